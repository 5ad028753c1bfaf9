output "target" {
  description = "Where this stack lives: aws or the LocalStack endpoint."
  value       = local.local_cloud ? var.localstack_endpoint : "aws"
}

output "region" {
  description = "Region of the stack."
  value       = local.region
}

output "account_id" {
  description = "Account the stack is deployed in."
  value       = local.account_id
}

output "state_machine_arn" {
  description = "ARN of the pipeline state machine (what `make invoke` starts)."
  value       = module.state_machine.arn
}

output "state_machine_name" {
  description = "Name of the pipeline state machine."
  value       = module.state_machine.name
}

output "data_bucket" {
  description = "Bucket for input shards."
  value       = module.storage.data_bucket_name
}

output "results_bucket" {
  description = "Bucket for runs (plans, predictions, summaries)."
  value       = module.storage.results_bucket_name
}

output "data_uri" {
  description = "S3 URI below which input shards must be uploaded (the functions may read only there)."
  value       = "s3://${module.storage.data_bucket_name}/${var.data_prefix}"
}

output "results_uri" {
  description = "S3 URI below which run outputs must go (the pipeline may write only there)."
  value       = "s3://${module.storage.results_bucket_name}/${var.results_prefix}"
}

output "function_names" {
  description = "Lambda function names by role (init, infer, summarize)."
  value = {
    init      = module.init_function.function_name
    infer     = module.infer_function.function_name
    summarize = module.summarize_function.function_name
  }
}

output "function_arns" {
  description = "Lambda function ARNs by role."
  value = {
    init      = module.init_function.function_arn
    infer     = module.infer_function.function_arn
    summarize = module.summarize_function.function_arn
  }
}

output "log_group_names" {
  description = "CloudWatch log groups: one per function plus the state machine's."
  value = {
    init          = module.init_function.log_group_name
    infer         = module.infer_function.log_group_name
    summarize     = module.summarize_function.log_group_name
    state_machine = module.state_machine.log_group_name
  }
}

output "ecr_repository_urls" {
  description = "ECR repository URLs by image (inference, orchestration), without tag."
  value       = module.ecr.repository_urls
}

output "image_uris" {
  description = "Image URIs the functions run."
  value       = local.image_uris
}

output "infer_memory_mb" {
  description = "Memory of the inference function (read by cost projections)."
  value       = var.infer_memory_mb
}

output "architecture" {
  description = "Lambda architecture of the functions."
  value       = var.architecture
}

output "iam_policies" {
  description = "Inline policy JSON of every role (init, infer, summarize, state_machine), for review."
  value = {
    init          = module.init_function.policy_json
    infer         = module.infer_function.policy_json
    summarize     = module.summarize_function.policy_json
    state_machine = module.state_machine.policy_json
  }
}
