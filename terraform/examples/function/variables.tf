variable "aws_region" {
  description = "AWS region of the deployed stack."
  type        = string
  default     = "us-east-1"
}

variable "name_prefix" {
  description = "Prefix of this function's resource names (not the stack's own prefix)."
  type        = string
  default     = "cosmicai-fn"
}

variable "data_bucket" {
  description = "The stack's input bucket (its `data_bucket` output)."
  type        = string
}

variable "data_prefix" {
  description = "Key prefix of the shards the function may read (the stack's data_prefix)."
  type        = string
  default     = "shards/"
}

variable "results_bucket" {
  description = "The stack's results bucket (its `results_bucket` output)."
  type        = string
}

variable "results_prefix" {
  description = "Key prefix below which the function may write (the stack's results_prefix)."
  type        = string
  default     = "runs/"
}

variable "image_tag" {
  description = "Tag of the inference image in this function's ECR repository."
  type        = string
}

variable "memory_mb" {
  description = "Memory of the function in MB (1,769 MB = 1 vCPU)."
  type        = number
  default     = 3538
}

variable "backend" {
  description = "Engine backend loaded at INIT (COSMICAI_BACKEND): torch or openvino."
  type        = string
  default     = "torch"
}

variable "architecture" {
  description = "Lambda instruction set, x86_64 or arm64 (the image must match)."
  type        = string
  default     = "x86_64"
}
