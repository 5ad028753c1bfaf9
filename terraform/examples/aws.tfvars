# Real AWS. `make deploy TARGET=aws` passes the image tags (content digests) itself.
aws_region = "us-east-1"

# The benchmarked size for the inference function: 1 vCPU (bench/REPORT.md, README "Performance and cost").
infer_memory_mb = 1769

# Cap the fan-out so one run cannot take the whole account's concurrency.
# infer_reserved_concurrency = 200

force_destroy       = false
log_retention_days  = 14
run_expiration_days = 30
