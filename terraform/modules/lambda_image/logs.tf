# Created before the function so Lambda never auto-creates it without retention.
resource "aws_cloudwatch_log_group" "this" {
  #checkov:skip=CKV_AWS_158:Logs carry run ids, timings and error messages only (no data or secrets); CloudWatch's default encryption is enough and a KMS key would add cost per stack.
  #checkov:skip=CKV_AWS_338:Function logs are operational; keeping them a year costs more than the runs they describe. Retention is var.log_retention_days.
  name              = "/aws/lambda/${var.function_name}"
  retention_in_days = var.log_retention_days
  tags              = var.tags
}
