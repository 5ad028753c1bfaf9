# One switch: localstack_endpoint = "" talks to AWS through the standard credential
# chain; any URL sends every service this stack uses to that endpoint instead.
locals {
  local_cloud = var.localstack_endpoint != ""
}

provider "aws" {
  region = var.aws_region

  # LocalStack accepts any credentials; AWS uses the standard chain (null = unset).
  access_key = local.local_cloud ? "test" : null
  secret_key = local.local_cloud ? "test" : null

  skip_credentials_validation = local.local_cloud
  skip_metadata_api_check     = local.local_cloud
  skip_region_validation      = local.local_cloud
  s3_use_path_style           = local.local_cloud

  dynamic "endpoints" {
    for_each = local.local_cloud ? [1] : []
    content {
      cloudwatch     = var.localstack_endpoint
      cloudwatchlogs = var.localstack_endpoint
      ecr            = var.localstack_endpoint
      iam            = var.localstack_endpoint
      lambda         = var.localstack_endpoint
      s3             = var.localstack_endpoint
      sfn            = var.localstack_endpoint
      sts            = var.localstack_endpoint
    }
  }

  default_tags {
    tags = merge({ project = "cosmicai", "cosmicai:stack" = var.name_prefix }, var.tags)
  }
}
