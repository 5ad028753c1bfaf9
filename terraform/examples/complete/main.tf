# The whole stack on AWS: the root module of this repository called as a module, with
# the settings a user of a real account sets. The root module configures the AWS
# provider itself (standard credential chain, region = var.aws_region), so this
# configuration declares none.
module "cosmicai" {
  source = "../.."

  aws_region  = var.aws_region
  name_prefix = var.name_prefix
  tags        = var.tags

  # Content-digest tags of images already pushed to the stack's ECR repositories
  # (`make deploy TARGET=aws` builds, pushes and passes them itself).
  inference_image_tag     = var.inference_image_tag
  orchestration_image_tag = var.orchestration_image_tag

  # The benchmarked size: 1,769 MB = 1 vCPU (bench/REPORT.md).
  infer_memory_mb = var.infer_memory_mb
  architecture    = var.architecture
  infer_backend   = var.infer_backend

  # Cap the fan-out so one run cannot take the account's whole concurrency.
  infer_reserved_concurrency = var.infer_reserved_concurrency

  force_destroy       = false
  log_retention_days  = 14
  run_expiration_days = 30

  # Failures only: "ALL" logs every state of every Distributed Map child.
  state_machine_log_level = "ERROR"
}
