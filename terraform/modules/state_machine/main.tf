# IAM is global but state machines are regional: the role name carries the region's short
# code, so the same name deployed in two regions does not claim the same role.
module "region_code" {
  source = "../region_code"
  region = data.aws_region.current.name
}

locals {
  # At most 64 characters (IAM's limit): name <= 51, "-<code>-role" <= 13.
  role_name = "${var.name}-${module.region_code.code}-role"
}

resource "aws_sfn_state_machine" "this" {
  #checkov:skip=CKV_AWS_285:Execution history is logged at var.log_level (ERROR by default: every failure, with its error and cause); full execution data for every Distributed Map child is a CloudWatch Logs cost at survey scale, so it is opt-in (log_level = "ALL", include_execution_data).
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

  lifecycle {
    precondition {
      condition     = length(local.role_name) <= 64
      error_message = "The role name ${local.role_name} is longer than IAM's 64 characters: shorten the state machine name (name_prefix)."
    }
  }
}
