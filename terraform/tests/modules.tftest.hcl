# The function, ECR and state machine modules alone, against a mocked AWS provider.

mock_provider "aws" {
  mock_data "aws_caller_identity" {
    defaults = {
      account_id = "123456789012"
    }
  }
  mock_data "aws_region" {
    defaults = {
      name = "us-east-1"
    }
  }
  mock_data "aws_partition" {
    defaults = {
      partition = "aws"
    }
  }
  mock_resource "aws_iam_role" {
    defaults = {
      arn = "arn:aws:iam::123456789012:role/mock"
    }
  }
  mock_resource "aws_cloudwatch_log_group" {
    defaults = {
      arn = "arn:aws:logs:us-east-1:123456789012:log-group:mock"
    }
  }
}

run "lambda_image_function" {
  command = apply

  module {
    source = "./modules/lambda_image"
  }

  variables {
    function_name        = "cosmicai-infer"
    image_uri            = "123456789012.dkr.ecr.us-east-1.amazonaws.com/cosmicai-inference:abc123"
    image_command        = ["cosmicai.handlers.infer.handler"]
    memory_mb            = 3008
    timeout_s            = 900
    architecture         = "x86_64"
    reserved_concurrency = 50
    environment          = { COSMICAI_LOG_LEVEL = "INFO" }
    read_locations       = [{ bucket_arn = "arn:aws:s3:::data", prefix = "shards/" }]
    write_locations      = [{ bucket_arn = "arn:aws:s3:::results", prefix = "runs/" }]
    log_retention_days   = 14
  }

  assert {
    condition     = aws_lambda_function.this.package_type == "Image" && aws_lambda_function.this.image_uri == var.image_uri
    error_message = "the function runs the given container image"
  }

  assert {
    condition     = jsonencode(one(aws_lambda_function.this.image_config).command) == jsonencode(["cosmicai.handlers.infer.handler"])
    error_message = "the handler comes from the image command"
  }

  assert {
    condition = (aws_lambda_function.this.memory_size == 3008 && aws_lambda_function.this.timeout == 900 &&
      jsonencode(aws_lambda_function.this.architectures) == jsonencode(["x86_64"]) && aws_lambda_function.this.reserved_concurrent_executions == 50 &&
    one(aws_lambda_function.this.environment).variables.COSMICAI_LOG_LEVEL == "INFO")
    error_message = "memory, timeout, architecture, concurrency and environment come from the variables"
  }

  assert {
    condition     = aws_cloudwatch_log_group.this.name == "/aws/lambda/cosmicai-infer" && aws_cloudwatch_log_group.this.retention_in_days == 14
    error_message = "the function's log group is created with a retention"
  }

  assert {
    condition     = jsondecode(aws_iam_role.this.assume_role_policy).Statement[0].Principal.Service == "lambda.amazonaws.com"
    error_message = "only Lambda may assume the function role"
  }

  assert {
    condition     = aws_iam_role.this.name == "cosmicai-infer-use1-role"
    error_message = "the role name carries the region code (IAM is global: the same prefix may be deployed in two regions)"
  }

  assert {
    condition = toset([for s in jsondecode(aws_iam_role_policy.this.policy).Statement : jsonencode([s.Action, s.Resource])]) == toset([
      jsonencode([["logs:CreateLogStream", "logs:PutLogEvents"], ["arn:aws:logs:us-east-1:123456789012:log-group:mock:*"]]),
      jsonencode([["s3:ListBucket"], ["arn:aws:s3:::data"]]),
      jsonencode([["s3:ListBucket"], ["arn:aws:s3:::results"]]),
      jsonencode([["s3:GetObject"], ["arn:aws:s3:::data/shards/*"]]),
      jsonencode([["s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"], ["arn:aws:s3:::results/runs/*"]]),
    ])
    error_message = "the function policy is exactly: own log group, list+read the data prefix, read+write the results prefix"
  }

  assert {
    condition = length([for s in jsondecode(aws_iam_role_policy.this.policy).Statement : s if s.Action == ["s3:ListBucket"]]) == 2 && alltrue([for s in jsondecode(aws_iam_role_policy.this.policy).Statement :
    jsonencode(s.Condition) == jsonencode({ StringLike = { "s3:prefix" = [s.Resource[0] == "arn:aws:s3:::data" ? "shards/*" : "runs/*"] } }) if s.Action == ["s3:ListBucket"]])
    error_message = "listing is limited to the prefixes"
  }
}

run "lambda_image_rejects_bad_settings" {
  command = plan

  module {
    source = "./modules/lambda_image"
  }

  variables {
    function_name        = "bad name"
    image_uri            = "not-an-image"
    image_command        = []
    memory_mb            = 64
    timeout_s            = 901
    architecture         = "sparc"
    reserved_concurrency = -2
    log_retention_days   = 14
  }

  expect_failures = [
    var.function_name,
    var.image_uri,
    var.image_command,
    var.memory_mb,
    var.timeout_s,
    var.architecture,
    var.reserved_concurrency,
  ]
}

run "ecr_repositories" {
  command = apply

  module {
    source = "./modules/ecr"
  }

  variables {
    repository_names = { inference = "cosmicai-inference", orchestration = "cosmicai-orchestration" }
    keep_images      = 10
    force_delete     = false
  }

  assert {
    condition = length(aws_ecr_repository.this) == 2 && alltrue([for r in aws_ecr_repository.this :
    r.image_tag_mutability == "IMMUTABLE" && one(r.image_scanning_configuration).scan_on_push])
    error_message = "repositories have immutable tags and scan on push"
  }

  assert {
    condition = length(aws_ecr_lifecycle_policy.this) == 2 && alltrue([for p in aws_ecr_lifecycle_policy.this :
    length(jsondecode(p.policy).rules) == 2 && jsondecode(p.policy).rules[1].selection.countNumber == 10])
    error_message = "a lifecycle policy keeps keep_images images"
  }

  assert {
    condition = length(aws_ecr_repository_policy.lambda_pull) == 2 && alltrue([for p in aws_ecr_repository_policy.lambda_pull :
      jsondecode(p.policy).Statement[0].Principal == { Service = "lambda.amazonaws.com" } &&
    jsondecode(p.policy).Statement[0].Condition.StringLike["aws:sourceArn"] == "arn:aws:lambda:us-east-1:123456789012:function:*"])
    error_message = "only this account's Lambda functions may pull the images"
  }
}

run "state_machine_rejects_placeholders" {
  command = plan

  module {
    source = "./modules/state_machine"
  }

  variables {
    name                 = "cosmicai-pipeline"
    definition           = "{\"StartAt\": \"$${init_function_arn}\"}"
    lambda_function_arns = ["arn:aws:lambda:us-east-1:123456789012:function:x"]
    results_bucket_arn   = "arn:aws:s3:::results"
    results_prefix       = "runs/"
    log_retention_days   = 14
  }

  expect_failures = [var.definition]
}

run "lambda_image_role_name_per_region" {
  command = plan

  module {
    source = "./modules/lambda_image"
  }

  override_data {
    target = data.aws_region.current
    values = { name = "ap-southeast-2" }
  }

  variables {
    function_name        = "abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmno"
    image_uri            = "123456789012.dkr.ecr.ap-southeast-2.amazonaws.com/cosmicai-inference:abc123"
    image_command        = ["cosmicai.handlers.infer.handler"]
    memory_mb            = 1769
    timeout_s            = 900
    architecture         = "arm64"
    reserved_concurrency = -1
    log_retention_days   = 14
  }

  assert {
    condition     = aws_iam_role.this.name == "${var.function_name}-apse2-role" && length(aws_iam_role.this.name) <= 64
    error_message = "another region gives another role name, and the longest function name still fits IAM's 64 characters"
  }
}

run "region_codes" {
  command = plan

  module {
    source = "./modules/lambda_image"
  }

  override_data {
    target = data.aws_region.current
    values = { name = "us-gov-west-1" }
  }

  variables {
    function_name        = "cosmicai-init"
    image_uri            = "123456789012.dkr.ecr.us-gov-west-1.amazonaws.com/cosmicai-orchestration:abc123"
    image_command        = ["cosmicai.handlers.init.handler"]
    memory_mb            = 512
    timeout_s            = 300
    architecture         = "x86_64"
    reserved_concurrency = -1
    log_retention_days   = 14
  }

  assert {
    condition     = aws_iam_role.this.name == "cosmicai-init-usgw1-role"
    error_message = "us-gov-west-1 is usgw1"
  }
}

run "state_machine_module" {
  command = apply

  module {
    source = "./modules/state_machine"
  }

  variables {
    name                 = "cosmicai-pipeline"
    definition           = "{\"StartAt\": \"Init\", \"States\": {\"Init\": {\"Type\": \"Succeed\"}}}"
    lambda_function_arns = ["arn:aws:lambda:us-east-1:123456789012:function:x"]
    results_bucket_arn   = "arn:aws:s3:::results"
    results_prefix       = "runs/"
    log_retention_days   = 14
  }

  assert {
    condition     = aws_iam_role.this.name == "cosmicai-pipeline-use1-role"
    error_message = "the state machine role name carries the region code"
  }

  assert {
    condition = (one(aws_sfn_state_machine.this.logging_configuration).level == "ERROR" &&
    one(aws_sfn_state_machine.this.logging_configuration).include_execution_data == false)
    error_message = "execution history is logged at ERROR without execution data by default (ALL logs every Map child)"
  }
}

run "state_machine_role_name_per_region" {
  command = plan

  module {
    source = "./modules/state_machine"
  }

  override_data {
    target = data.aws_region.current
    values = { name = "eu-west-1" }
  }

  variables {
    name                 = "cosmicai-pipeline"
    definition           = "{\"StartAt\": \"Init\", \"States\": {\"Init\": {\"Type\": \"Succeed\"}}}"
    lambda_function_arns = ["arn:aws:lambda:eu-west-1:123456789012:function:x"]
    results_bucket_arn   = "arn:aws:s3:::results"
    results_prefix       = "runs/"
    log_retention_days   = 14
    log_level            = "ALL"
  }

  assert {
    condition     = aws_iam_role.this.name == "cosmicai-pipeline-euw1-role"
    error_message = "eu-west-1 gives another role name than us-east-1"
  }

  assert {
    condition     = one(aws_sfn_state_machine.this.logging_configuration).level == "ALL"
    error_message = "ALL stays available"
  }
}
