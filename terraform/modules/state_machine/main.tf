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

  # Only when enabled: LocalStack omits a disabled tracing configuration, which would
  # make every apply re-send `enabled = false` (AWS treats absent as disabled).
  dynamic "tracing_configuration" {
    for_each = var.tracing_enabled ? [1] : []
    content {
      enabled = true
    }
  }

  tags = var.tags

  depends_on = [aws_iam_role_policy.this]
}
