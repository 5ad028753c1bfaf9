resource "aws_sfn_state_machine" "this" {
  #checkov:skip=CKV_AWS_284:X-Ray is opt-in (var.tracing_enabled); the run summary already records per-worker timings and the execution history is logged.
  name       = var.name
  role_arn   = aws_iam_role.this.arn
  type       = "STANDARD"
  definition = var.definition

  logging_configuration {
    log_destination        = "${aws_cloudwatch_log_group.this.arn}:*"
    include_execution_data = var.include_execution_data
    level                  = var.log_level
  }

  tracing_configuration {
    enabled = var.tracing_enabled
  }

  tags = var.tags

  depends_on = [aws_iam_role_policy.this]
}
