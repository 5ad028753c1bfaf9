output "repository_urls" {
  description = "Map of logical image name to repository URL (registry/name, no tag)."
  value       = { for k, r in aws_ecr_repository.this : k => r.repository_url }
}

output "repository_arns" {
  description = "Map of logical image name to repository ARN."
  value       = { for k, r in aws_ecr_repository.this : k => r.arn }
}
