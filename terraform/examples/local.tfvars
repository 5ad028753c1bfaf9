# Local cloud (LocalStack). `make deploy` passes localstack_endpoint and the image
# tags itself; these are the settings that differ from AWS.
force_destroy      = true
log_retention_days = 1
