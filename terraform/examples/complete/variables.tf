variable "aws_region" {
  description = "AWS region of the stack."
  type        = string
  default     = "us-east-1"
}

variable "name_prefix" {
  description = "Prefix of every resource name."
  type        = string
  default     = "cosmicai"
}

variable "tags" {
  description = "Extra tags on every resource."
  type        = map(string)
  default     = {}
}

variable "inference_image_tag" {
  description = "Tag of the inference image in the stack's inference ECR repository."
  type        = string
}

variable "orchestration_image_tag" {
  description = "Tag of the orchestration image in the stack's orchestration ECR repository."
  type        = string
}

variable "infer_memory_mb" {
  description = "Memory of the inference function in MB (1,769 MB = 1 vCPU)."
  type        = number
  default     = 1769
}

variable "architecture" {
  description = "Lambda instruction set, x86_64 or arm64 (the images must match)."
  type        = string
  default     = "x86_64"
}

variable "infer_backend" {
  description = "Engine backend of the inference function: torch or openvino."
  type        = string
  default     = "torch"
}

variable "infer_reserved_concurrency" {
  description = "Reserved concurrency of the inference function; -1 = unreserved."
  type        = number
  default     = -1
}
