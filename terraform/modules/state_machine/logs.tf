resource "aws_cloudwatch_log_group" "this" {
  #checkov:skip=CKV_AWS_158:Execution history holds run ids, S3 keys and timings only; CloudWatch's default encryption is enough and a KMS key would add cost per stack.
  #checkov:skip=CKV_AWS_338:Execution logs are operational; a year of retention costs more than it is worth. Retention is var.log_retention_days.
  name              = "/aws/vendedlogs/states/${var.name}"
  retention_in_days = var.log_retention_days
  tags              = var.tags
}
