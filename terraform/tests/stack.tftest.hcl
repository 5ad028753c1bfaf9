# Plans and "applies" the whole stack against a mocked AWS provider (no cloud, no
# credentials) and asserts the security-relevant settings and the rendered ASL.

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
  mock_resource "aws_sfn_state_machine" {
    defaults = {
      arn = "arn:aws:states:us-east-1:123456789012:stateMachine:mock"
    }
  }
  mock_resource "aws_ecr_repository" {
    defaults = {
      repository_url = "123456789012.dkr.ecr.us-east-1.amazonaws.com/mock"
    }
  }
}

# Every bucket, function and log group gets its own ARN (a mock default gives all of them one,
# and then a policy naming the wrong bucket or one function for three would still pass).
override_resource {
  target = module.storage.aws_s3_bucket.this["data"]
  values = { arn = "arn:aws:s3:::mock-data" }
}
override_resource {
  target = module.storage.aws_s3_bucket.this["results"]
  values = { arn = "arn:aws:s3:::mock-results" }
}
override_resource {
  target = module.init_function.aws_lambda_function.this
  values = { arn = "arn:aws:lambda:us-east-1:123456789012:function:mock-init" }
}
override_resource {
  target = module.init_function.aws_cloudwatch_log_group.this
  values = { arn = "arn:aws:logs:us-east-1:123456789012:log-group:mock-init" }
}
override_resource {
  target = module.infer_function.aws_lambda_function.this
  values = { arn = "arn:aws:lambda:us-east-1:123456789012:function:mock-infer" }
}
override_resource {
  target = module.infer_function.aws_cloudwatch_log_group.this
  values = { arn = "arn:aws:logs:us-east-1:123456789012:log-group:mock-infer" }
}
override_resource {
  target = module.summarize_function.aws_lambda_function.this
  values = { arn = "arn:aws:lambda:us-east-1:123456789012:function:mock-summarize" }
}
override_resource {
  target = module.summarize_function.aws_cloudwatch_log_group.this
  values = { arn = "arn:aws:logs:us-east-1:123456789012:log-group:mock-summarize" }
}
override_resource {
  target = module.state_machine.aws_cloudwatch_log_group.this
  values = { arn = "arn:aws:logs:us-east-1:123456789012:log-group:mock-sfn" }
}

variables {
  inference_image_tag     = "sha256-0123456789abcdef"
  orchestration_image_tag = "sha256-fedcba9876543210"
}

run "iam_is_least_privilege" {
  command = apply

  # No statement anywhere allows a wildcard action, and "*" resources are only used
  # for the few actions AWS cannot scope (log delivery, X-Ray).
  assert {
    condition = alltrue(flatten([for role, doc in output.iam_policies : [
      for s in jsondecode(doc).Statement : [
        for a in flatten([s.Action]) : !strcontains(a, "*")
      ]
    ]]))
    error_message = "no IAM action may contain a wildcard"
  }

  assert {
    condition = alltrue(flatten([for role, doc in output.iam_policies : [
      for s in jsondecode(doc).Statement : [
        for a in flatten([s.Action]) : startswith(a, "logs:") || startswith(a, "xray:")
      ] if contains(flatten([s.Resource]), "*")
    ]]))
    error_message = "only log-delivery and X-Ray actions may use Resource \"*\""
  }

  assert {
    condition = alltrue([for role in ["init", "infer", "summarize"] :
      anytrue([for s in jsondecode(output.iam_policies[role]).Statement :
        try(s.Sid, "") == "OwnLogGroup" && flatten([s.Resource]) == ["arn:aws:logs:us-east-1:123456789012:log-group:mock-${role}:*"]
      ])
    ])
    error_message = "each function may write only its own log group"
  }

  assert {
    condition = anytrue([for s in jsondecode(output.iam_policies.infer).Statement :
    try(s.Sid, "") == "ReadObjects" && s.Action == ["s3:GetObject"] && s.Resource == ["arn:aws:s3:::mock-data/shards/*"]])
    error_message = "infer may read only the data prefix"
  }

  assert {
    condition = anytrue([for s in jsondecode(output.iam_policies.infer).Statement :
    try(s.Sid, "") == "ReadWriteObjects" && s.Resource == ["arn:aws:s3:::mock-results/runs/*"]])
    error_message = "infer may write only the results prefix"
  }

  assert {
    condition = alltrue([for s in jsondecode(output.iam_policies.summarize).Statement :
    try(s.Sid, "") != "ReadObjects"])
    error_message = "summarize must not read the input data"
  }

  assert {
    condition = anytrue([for s in jsondecode(output.iam_policies.state_machine).Statement :
      try(s.Sid, "") == "InvokeOwnFunctions" && s.Action == ["lambda:InvokeFunction"] &&
      toset(s.Resource) == toset(flatten([for fn in ["init", "infer", "summarize"] : [
        "arn:aws:lambda:us-east-1:123456789012:function:mock-${fn}", "arn:aws:lambda:us-east-1:123456789012:function:mock-${fn}:*"
      ]]))
    ])
    error_message = "the state machine may invoke only the stack's functions"
  }

  assert {
    condition = anytrue([for s in jsondecode(output.iam_policies.state_machine).Statement :
      s.Action == ["states:StartExecution"] &&
      s.Resource == ["arn:aws:states:us-east-1:123456789012:stateMachine:cosmicai-pipeline"]
    ])
    error_message = "the Distributed Map may start executions only of its own state machine"
  }

  assert {
    condition = anytrue([for s in jsondecode(output.iam_policies.state_machine).Statement :
    try(s.Sid, "") == "ReadPlan" && s.Action == ["s3:GetObject"] && s.Resource == ["arn:aws:s3:::mock-results/runs/*"]])
    error_message = "the state machine may only read (the plan) below the results prefix"
  }

  assert {
    condition = anytrue([for s in jsondecode(output.iam_policies.state_machine).Statement :
      s.Action == ["states:DescribeExecution", "states:StopExecution"] &&
      contains(s.Resource, "arn:aws:states:us-east-1:123456789012:execution:cosmicai-pipeline/*")
    ])
    error_message = "the state machine must reach the Distributed Map's child executions (execution:<name>/<label>:<id>)"
  }
}

run "functions_and_state_machine" {
  command = apply

  assert {
    condition     = !strcontains(module.state_machine.definition, "$${")
    error_message = "every ASL placeholder must be substituted"
  }

  assert {
    condition = alltrue([for fn in ["init", "infer", "summarize"] :
    strcontains(module.state_machine.definition, "\"arn:aws:lambda:us-east-1:123456789012:function:mock-${fn}\"")])
    error_message = "the ASL must name each of the three function ARNs"
  }

  assert {
    condition     = can(jsondecode(module.state_machine.definition).StartAt)
    error_message = "the rendered ASL must be valid JSON"
  }

  assert {
    condition     = output.infer_memory_mb == 1769
    error_message = "the inference function defaults to 1769 MB (the bench recommendation)"
  }

  assert {
    condition     = output.data_bucket == "cosmicai-data-123456789012-us-east-1" && output.results_bucket == "cosmicai-results-123456789012-us-east-1"
    error_message = "bucket names must derive from prefix, account and region"
  }

  assert {
    condition     = output.image_uris.inference == "123456789012.dkr.ecr.us-east-1.amazonaws.com/mock:sha256-0123456789abcdef"
    error_message = "image URIs are <repository_url>:<tag>"
  }

  assert {
    condition     = output.target == "aws"
    error_message = "an empty localstack_endpoint means AWS"
  }

  assert {
    condition = (module.init_function.role_name == "cosmicai-init-use1-role" &&
      module.infer_function.role_name == "cosmicai-infer-use1-role" &&
    module.summarize_function.role_name == "cosmicai-summarize-use1-role")
    error_message = "function role names carry the region code"
  }

  assert {
    condition     = var.state_machine_log_level == "ERROR"
    error_message = "the state machine logs at ERROR by default (ALL logs every Distributed Map child)"
  }
}

run "same_prefix_in_another_region" {
  command = plan

  variables {
    name_prefix = "abcdefghijklmnopqrstuvwx"
  }

  override_data {
    target = module.infer_function.data.aws_region.current
    values = { name = "ap-southeast-1" }
  }

  assert {
    condition     = module.infer_function.role_name == "abcdefghijklmnopqrstuvwx-infer-apse1-role"
    error_message = "the longest name_prefix in another region gives a distinct role name within 64 characters"
  }
}

run "localstack_switch" {
  command = plan

  variables {
    localstack_endpoint = "http://127.0.0.1:4566"
  }

  assert {
    condition     = output.target == "http://127.0.0.1:4566"
    error_message = "localstack_endpoint switches the target"
  }
}

run "rejects_bad_variables" {
  command = plan

  variables {
    name_prefix         = "Bad_Prefix"
    infer_memory_mb     = 512
    inference_image_tag = "latest"
    localstack_endpoint = "localhost"
    log_retention_days  = 10
    extra_environment   = { AWS_REGION = "x" }
    results_prefix      = "runs"
  }

  expect_failures = [
    var.name_prefix,
    var.infer_memory_mb,
    var.inference_image_tag,
    var.localstack_endpoint,
    var.log_retention_days,
    var.extra_environment,
    var.results_prefix,
  ]
}
