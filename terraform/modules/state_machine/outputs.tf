output "arn" {
  description = "ARN of the state machine."
  value       = aws_sfn_state_machine.this.arn
}

output "name" {
  description = "Name of the state machine."
  value       = aws_sfn_state_machine.this.name
}

output "role_arn" {
  description = "ARN of the state machine's role."
  value       = aws_iam_role.this.arn
}

output "log_group_name" {
  description = "CloudWatch log group of the execution history."
  value       = aws_cloudwatch_log_group.this.name
}

output "policy_json" {
  description = "The role's inline policy document (for tests and reviews)."
  value       = local.policy
}

output "definition" {
  description = "The rendered ASL the state machine runs."
  value       = aws_sfn_state_machine.this.definition
}
