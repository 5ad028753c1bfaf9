# Local cloud (LocalStack). `make deploy` passes localstack_endpoint and the image
# tags itself; these are the settings that differ from AWS.
force_destroy      = true
log_retention_days = 1
# The full execution history locally (free here, and what debugging a run wants);
# AWS defaults to ERROR (docs/deploy.md "To AWS, step by step").
state_machine_log_level = "ALL"
