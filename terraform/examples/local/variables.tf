variable "localstack_endpoint" {
  description = "URL of the local cloud (`make localstack-up` serves http://127.0.0.1:4566)."
  type        = string
  default     = "http://127.0.0.1:4566"
}

variable "aws_region" {
  description = "Region the local cloud is asked for (LocalStack accepts any)."
  type        = string
  default     = "us-east-1"
}

variable "name_prefix" {
  description = "Prefix of every resource name; not `cosmicai`, which `make deploy` uses."
  type        = string
  default     = "cosmicai-example"
}
