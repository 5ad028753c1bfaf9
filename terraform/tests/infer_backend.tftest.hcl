# The inference function's engine backend (`infer_backend` -> COSMICAI_BACKEND, read by
# cosmicai.handlers.infer at INIT): torch by default, openvino when asked, nothing else,
# and only on the inference function.

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
  mock_resource "aws_ecr_repository" {
    defaults = {
      repository_url = "123456789012.dkr.ecr.us-east-1.amazonaws.com/mock"
    }
  }
}

variables {
  inference_image_tag     = "sha256-0123456789abcdef"
  orchestration_image_tag = "sha256-fedcba9876543210"
}

run "torch_by_default" {
  command = plan

  assert {
    condition     = module.infer_function.environment.COSMICAI_BACKEND == "torch"
    error_message = "the inference function loads the torch backend unless infer_backend says otherwise"
  }
}

run "openvino_on_the_inference_function_only" {
  command = plan

  variables {
    infer_backend     = "openvino"
    extra_environment = { COSMICAI_BACKEND = "torch" }
  }

  assert {
    condition     = module.infer_function.environment.COSMICAI_BACKEND == "openvino"
    error_message = "infer_backend sets COSMICAI_BACKEND on the inference function (over extra_environment)"
  }

  assert {
    condition     = module.infer_function.environment.COSMICAI_LOG_LEVEL == "INFO"
    error_message = "the backend is added to the common environment, not instead of it"
  }

  assert {
    condition = (lookup(module.init_function.environment, "COSMICAI_BACKEND", "torch") == "torch" &&
    lookup(module.summarize_function.environment, "COSMICAI_BACKEND", "torch") == "torch")
    error_message = "Init and Summarize run no engine: infer_backend is not theirs"
  }
}

run "rejects_an_unknown_backend" {
  command = plan

  variables {
    infer_backend = "onnx"
  }

  expect_failures = [var.infer_backend]
}
