output "function_name" {
  description = "Name of the function."
  value       = aws_lambda_function.this.function_name
}

output "function_arn" {
  description = "Unqualified ARN of the function."
  value       = aws_lambda_function.this.arn
}

output "role_arn" {
  description = "ARN of the function's execution role."
  value       = aws_iam_role.this.arn
}

output "role_name" {
  description = "Name of the function's execution role."
  value       = aws_iam_role.this.name
}

output "log_group_name" {
  description = "CloudWatch log group of the function."
  value       = aws_cloudwatch_log_group.this.name
}

output "policy_json" {
  description = "The role's inline policy document (for tests and reviews)."
  value       = local.policy
}

output "environment" {
  description = "The function's environment variables as deployed (for tests and reviews)."
  value       = try(aws_lambda_function.this.environment[0].variables, {})
}
