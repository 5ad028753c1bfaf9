output "state_machine_arn" {
  description = "ARN of the pipeline state machine (what `cosmicai invoke` starts)."
  value       = module.cosmicai.state_machine_arn
}

output "data_uri" {
  description = "S3 URI below which input shards must be uploaded."
  value       = module.cosmicai.data_uri
}

output "results_uri" {
  description = "S3 URI below which run outputs must go."
  value       = module.cosmicai.results_uri
}

output "ecr_repository_urls" {
  description = "ECR repository URLs by image (inference, orchestration), to push the images to."
  value       = module.cosmicai.ecr_repository_urls
}

output "function_names" {
  description = "Lambda function names by role (init, infer, summarize)."
  value       = module.cosmicai.function_names
}
