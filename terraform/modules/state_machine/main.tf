# IAM is global but state machines are regional: the same name deployed in two regions
# would claim the same role name, so it carries a short region code (us-east-1 -> use1),
# computed as in the lambda_image module.
locals {
  region_words    = split("-", data.aws_region.current.name)
  direction_codes = { north = "n", south = "s", east = "e", west = "w", central = "c", northeast = "ne", northwest = "nw", southeast = "se", southwest = "sw" }
  region_code = join("", concat([local.region_words[0]], [
    for w in slice(local.region_words, 1, length(local.region_words)) :
    can(regex("^[0-9]+$", w)) ? w : lookup(local.direction_codes, w, substr(w, 0, 1))
  ]))
  # At most 64 characters (IAM's limit): name <= 51, "-<code>-role" <= 13.
  role_name = "${var.name}-${local.region_code}-role"
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
