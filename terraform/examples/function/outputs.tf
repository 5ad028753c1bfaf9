output "function_name" {
  description = "Name of the inference function."
  value       = module.infer_function.function_name
}

output "repository_url" {
  description = "ECR repository to push the inference image to."
  value       = module.ecr.repository_urls["inference"]
}

output "policy_json" {
  description = "The function role's inline policy, for review."
  value       = module.infer_function.policy_json
}
