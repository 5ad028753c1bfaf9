"""Deploy tooling: Terraform per target (local LocalStack or AWS), images, logs."""
