# The whole stack on the local cloud (LocalStack with this repository's Lambda executor,
# `make localstack-up`): the root module called as a module with localstack_endpoint set,
# which points every AWS service at it with LocalStack's test credentials. No account, no
# Docker, no internet.
module "cosmicai" {
  source = "../.."

  localstack_endpoint = var.localstack_endpoint
  aws_region          = var.aws_region

  # Its own names, so it can live beside the stack `make deploy` creates (name_prefix
  # "cosmicai") in the same LocalStack.
  name_prefix = var.name_prefix

  # In the executor's process mode no image is built: a function runs as a process of this
  # repository's tree, and LocalStack only needs a non-empty image URI, <repository_url>:local.
  inference_image_tag     = "local"
  orchestration_image_tag = "local"

  # Throw-away settings (what terraform/examples/local.tfvars sets for `make deploy`).
  force_destroy      = true
  log_retention_days = 1
  # The full execution history: free here, and what debugging a run wants.
  state_machine_log_level = "ALL"
}
