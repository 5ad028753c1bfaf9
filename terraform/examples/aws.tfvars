# Real AWS. `make deploy TARGET=aws` passes the region (AWS_REGION, AWS_DEFAULT_REGION or
# the profile's region; see docs/deploy.md "To AWS, step by step") and the image tags (content
# digests) itself. `make preflight TARGET=aws` reads this file too.

# The benchmarked size for the inference function: 1 vCPU (bench/REPORT.md, docs/performance.md "Performance and cost").
infer_memory_mb = 1769

# The images are built for this instruction set (docker --platform linux/amd64 or
# linux/arm64), whatever machine builds them.
architecture = "x86_64"

# Cap the fan-out so one run cannot take the whole account's concurrency (AWS keeps at
# least 10 unreserved; `make preflight` checks it against the account).
# infer_reserved_concurrency = 200

force_destroy       = false
log_retention_days  = 14
run_expiration_days = 30

# Failures only; "ALL" logs every state of every Map child (CloudWatch ingestion per run).
state_machine_log_level = "ERROR"
