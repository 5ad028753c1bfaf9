resource "aws_lambda_function" "this" {
  #checkov:skip=CKV_AWS_116:Invoked synchronously by Step Functions, which retries and catches failures and records them in the run summary; a DLQ only applies to asynchronous invocations.
  #checkov:skip=CKV_AWS_117:The functions reach only S3 and CloudWatch through public AWS endpoints; a VPC would need NAT or endpoints (cost, cold-start latency) and protect nothing.
  #checkov:skip=CKV_AWS_173:Environment holds only a log level and other non-secret settings; AWS-managed encryption at rest is enough.
  #checkov:skip=CKV_AWS_272:Lambda code signing does not apply to container-image functions; images are pinned by immutable content-digest tags in ECR instead.
  #checkov:skip=CKV_AWS_50:X-Ray is opt-in (var.tracing_mode); every worker already reports its timings to the run summary.
  function_name = var.function_name
  description   = var.description
  role          = aws_iam_role.this.arn
  package_type  = "Image"
  image_uri     = var.image_uri
  architectures = [var.architecture]
  memory_size   = var.memory_mb
  timeout       = var.timeout_s

  reserved_concurrent_executions = var.reserved_concurrency

  image_config {
    command = var.image_command
  }

  dynamic "environment" {
    for_each = length(var.environment) > 0 ? [1] : []
    content {
      variables = var.environment
    }
  }

  tracing_config {
    mode = var.tracing_mode
  }

  tags = var.tags

  depends_on = [aws_cloudwatch_log_group.this, aws_iam_role_policy.this]
}
