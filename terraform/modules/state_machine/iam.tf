data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}
data "aws_region" "current" {}

# Policies are built with jsonencode so `terraform test` can assert on their content.
locals {
  arn_prefix = "arn:${data.aws_partition.current.partition}:states:${data.aws_region.current.name}:${data.aws_caller_identity.current.account_id}"
  # Built from the name, not the resource, so the role can exist before the machine.
  state_machine_arn = "${local.arn_prefix}:stateMachine:${var.name}"
  # The run's own executions are execution:<name>:<id>; the Distributed Map's child
  # executions are execution:<name>/<map run label>:<id> (AWS's Distributed Map IAM guidance).
  execution_arns = ["${local.arn_prefix}:execution:${var.name}:*", "${local.arn_prefix}:execution:${var.name}/*"]
  map_run_arns   = "${local.arn_prefix}:mapRun:${var.name}/*"

  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Action    = "sts:AssumeRole"
      Principal = { Service = "states.amazonaws.com" }
      Condition = { StringEquals = { "aws:SourceAccount" = data.aws_caller_identity.current.account_id } }
    }]
  })

  base_statements = [
    {
      Sid      = "InvokeOwnFunctions"
      Effect   = "Allow"
      Action   = ["lambda:InvokeFunction"]
      Resource = concat(var.lambda_function_arns, [for a in var.lambda_function_arns : "${a}:*"])
    },
    # Distributed Map runs its child workflows as executions of this state machine.
    {
      Sid      = "DistributedMapChildren"
      Effect   = "Allow"
      Action   = ["states:StartExecution"]
      Resource = [local.state_machine_arn]
    },
    {
      Sid      = "DistributedMapExecutions"
      Effect   = "Allow"
      Action   = ["states:DescribeExecution", "states:StopExecution"]
      Resource = local.execution_arns
    },
    {
      Sid      = "DistributedMapRuns"
      Effect   = "Allow"
      Action   = ["states:DescribeMapRun", "states:UpdateMapRun"]
      Resource = [local.map_run_arns]
    },
    # The Map's ItemReader reads plan.json; the functions write everything else.
    {
      Sid      = "ReadPlan"
      Effect   = "Allow"
      Action   = ["s3:GetObject"]
      Resource = ["${var.results_bucket_arn}/${var.results_prefix}*"]
    },
    {
      Sid       = "ListRuns"
      Effect    = "Allow"
      Action    = ["s3:ListBucket"]
      Resource  = [var.results_bucket_arn]
      Condition = { StringLike = { "s3:prefix" = ["${var.results_prefix}*"] } }
    },
    # CloudWatch Logs delivery for Step Functions supports no resource-level scoping.
    {
      Sid    = "ExecutionLogDelivery"
      Effect = "Allow"
      Action = [
        "logs:CreateLogDelivery",
        "logs:GetLogDelivery",
        "logs:UpdateLogDelivery",
        "logs:DeleteLogDelivery",
        "logs:ListLogDeliveries",
        "logs:PutResourcePolicy",
        "logs:DescribeResourcePolicies",
        "logs:DescribeLogGroups",
      ]
      Resource = ["*"]
    },
  ]

  xray_statements = var.tracing_enabled ? [{
    Sid      = "XRayTraces"
    Effect   = "Allow"
    Action   = ["xray:PutTraceSegments", "xray:PutTelemetryRecords", "xray:GetSamplingRules", "xray:GetSamplingTargets"]
    Resource = ["*"]
  }] : []

  policy = jsonencode({
    Version   = "2012-10-17"
    Statement = concat(local.base_statements, local.xray_statements)
  })
}

resource "aws_iam_role" "this" {
  name               = local.role_name
  description        = "Role of the ${var.name} state machine: invoke its functions, read its plan, write its results."
  assume_role_policy = local.assume_role_policy
  tags               = var.tags
}

resource "aws_iam_role_policy" "this" {
  name   = "${var.name}-access"
  role   = aws_iam_role.this.id
  policy = local.policy
}
