data "aws_caller_identity" "current" {}
data "aws_region" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  region     = data.aws_region.current.name

  data_bucket_name    = var.data_bucket_name != "" ? var.data_bucket_name : "${var.name_prefix}-data-${local.account_id}-${local.region}"
  results_bucket_name = var.results_bucket_name != "" ? var.results_bucket_name : "${var.name_prefix}-results-${local.account_id}-${local.region}"

  image_uris = {
    inference     = var.inference_image_uri != "" ? var.inference_image_uri : "${module.ecr.repository_urls["inference"]}:${var.inference_image_tag}"
    orchestration = var.orchestration_image_uri != "" ? var.orchestration_image_uri : "${module.ecr.repository_urls["orchestration"]}:${var.orchestration_image_tag}"
  }

  environment = merge(var.extra_environment, {
    COSMICAI_LOG_LEVEL = var.log_level
  })

  tracing_mode = var.xray_tracing ? "Active" : "PassThrough"
  asl_path     = var.asl_template_path != "" ? var.asl_template_path : "${path.module}/../statemachine/pipeline.asl.json"
}

module "storage" {
  source = "./modules/storage"

  data_bucket_name        = local.data_bucket_name
  results_bucket_name     = local.results_bucket_name
  results_prefix          = var.results_prefix
  run_expiration_days     = var.run_expiration_days
  noncurrent_version_days = var.noncurrent_version_days
  force_destroy           = var.force_destroy
}

module "ecr" {
  source = "./modules/ecr"

  repository_names = {
    inference     = "${var.name_prefix}-inference"
    orchestration = "${var.name_prefix}-orchestration"
  }
  keep_images  = var.ecr_keep_images
  force_delete = var.force_destroy
}

locals {
  data_location    = { bucket_arn = module.storage.data_bucket_arn, prefix = var.data_prefix }
  results_location = { bucket_arn = module.storage.results_bucket_arn, prefix = var.results_prefix }
}

# Init: lists and probes the input shards, writes the plan under the run's output.
module "init_function" {
  source = "./modules/lambda_image"

  function_name        = "${var.name_prefix}-init"
  description          = "cosmic-ai Init: validate the payload, plan work items"
  image_uri            = local.image_uris.orchestration
  image_command        = ["cosmicai.handlers.init.handler"]
  memory_mb            = var.init_memory_mb
  timeout_s            = var.init_timeout_s
  architecture         = var.architecture
  reserved_concurrency = var.orchestration_reserved_concurrency
  environment          = local.environment
  read_locations       = [local.data_location]
  write_locations      = [local.results_location]
  log_retention_days   = var.log_retention_days
  tracing_mode         = local.tracing_mode
}

# Infer: reads its shards, writes predictions and a worker report.
module "infer_function" {
  source = "./modules/lambda_image"

  function_name        = "${var.name_prefix}-infer"
  description          = "cosmic-ai Infer: AstroMAE redshifts for one work item"
  image_uri            = local.image_uris.inference
  image_command        = ["cosmicai.handlers.infer.handler"]
  memory_mb            = var.infer_memory_mb
  timeout_s            = var.infer_timeout_s
  architecture         = var.architecture
  reserved_concurrency = var.infer_reserved_concurrency
  environment          = merge(local.environment, { COSMICAI_BACKEND = var.infer_backend })
  read_locations       = [local.data_location]
  write_locations      = [local.results_location]
  log_retention_days   = var.log_retention_days
  tracing_mode         = local.tracing_mode
}

# Summarize: reads the run's plan, worker reports and catalogs; writes the summary.
module "summarize_function" {
  source = "./modules/lambda_image"

  function_name        = "${var.name_prefix}-summarize"
  description          = "cosmic-ai Summarize: merge catalogs, exact metrics, run summary"
  image_uri            = local.image_uris.orchestration
  image_command        = ["cosmicai.handlers.summarize.handler"]
  memory_mb            = var.summarize_memory_mb
  timeout_s            = var.summarize_timeout_s
  architecture         = var.architecture
  reserved_concurrency = var.orchestration_reserved_concurrency
  environment          = local.environment
  read_locations       = []
  write_locations      = [local.results_location]
  log_retention_days   = var.log_retention_days
  tracing_mode         = local.tracing_mode
}

module "state_machine" {
  source = "./modules/state_machine"

  name = "${var.name_prefix}-pipeline"
  definition = templatefile(local.asl_path, {
    init_function_arn      = module.init_function.function_arn
    infer_function_arn     = module.infer_function.function_arn
    summarize_function_arn = module.summarize_function.function_arn
  })
  lambda_function_arns = [
    module.init_function.function_arn,
    module.infer_function.function_arn,
    module.summarize_function.function_arn,
  ]
  results_bucket_arn = module.storage.results_bucket_arn
  results_prefix     = var.results_prefix
  log_level          = var.state_machine_log_level
  log_retention_days = var.log_retention_days
  tracing_enabled    = var.xray_tracing
}
