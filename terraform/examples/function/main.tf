# The modules without the root module: a second inference function beside a deployed stack
# (another memory size or backend, say), reading that stack's shards and writing below its
# results prefix, with its own image repository. Composed from modules/ecr and
# modules/lambda_image. No state machine: you invoke the function yourself with one work item.
# Unlike the root module, the modules configure no provider, so this configuration does.
provider "aws" {
  region = var.aws_region

  default_tags {
    tags = { project = "cosmicai", "cosmicai:stack" = var.name_prefix }
  }
}

data "aws_partition" "current" {}

locals {
  bucket_arn_prefix = "arn:${data.aws_partition.current.partition}:s3:::"
}

module "ecr" {
  source = "../../modules/ecr"

  repository_names = { inference = "${var.name_prefix}-inference" }
  keep_images      = 3
  force_delete     = true
}

module "infer_function" {
  source = "../../modules/lambda_image"

  function_name        = "${var.name_prefix}-infer"
  description          = "cosmic-ai Infer beside the ${var.data_bucket} stack"
  image_uri            = "${module.ecr.repository_urls["inference"]}:${var.image_tag}"
  image_command        = ["cosmicai.handlers.infer.handler"]
  memory_mb            = var.memory_mb
  timeout_s            = 900
  architecture         = var.architecture
  reserved_concurrency = -1
  environment          = { COSMICAI_LOG_LEVEL = "INFO", COSMICAI_BACKEND = var.backend }
  # Reads shards only below data_prefix, writes only below results_prefix: nothing else.
  read_locations     = [{ bucket_arn = "${local.bucket_arn_prefix}${var.data_bucket}", prefix = var.data_prefix }]
  write_locations    = [{ bucket_arn = "${local.bucket_arn_prefix}${var.results_bucket}", prefix = var.results_prefix }]
  log_retention_days = 7
}
