variable "function_name" {
  description = "Name of the Lambda function (also names its role and log group)."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9_-]{1,51}$", var.function_name))
    error_message = "function_name must be 1-51 letters, digits, '-' or '_' (the role name adds '-<region code>-role', IAM allows 64)."
  }
}

variable "description" {
  description = "Human-readable description of the function."
  type        = string
  default     = ""
}

variable "image_uri" {
  description = "Container image URI with tag or digest, e.g. <registry>/<repo>:<tag>."
  type        = string

  validation {
    condition     = can(regex("^[^\\s:]+(:[0-9]+)?/[^\\s]+(:[A-Za-z0-9_.-]+|@sha256:[0-9a-f]{64})$", var.image_uri))
    error_message = "image_uri must be <registry>/<repository>:<tag> or <registry>/<repository>@sha256:<digest>."
  }
}

variable "image_command" {
  description = "ImageConfig command: the handler, e.g. [\"cosmicai.handlers.infer.handler\"]."
  type        = list(string)

  validation {
    condition     = length(var.image_command) >= 1
    error_message = "image_command must name the handler."
  }
}

variable "memory_mb" {
  description = "Memory in MB (Lambda gives 1 vCPU per 1,769 MB, up to 6 vCPU at 10,240 MB)."
  type        = number

  validation {
    condition     = var.memory_mb >= 128 && var.memory_mb <= 10240 && floor(var.memory_mb) == var.memory_mb
    error_message = "memory_mb must be a whole number from 128 to 10240."
  }
}

variable "timeout_s" {
  description = "Function timeout in seconds."
  type        = number

  validation {
    condition     = var.timeout_s >= 1 && var.timeout_s <= 900 && floor(var.timeout_s) == var.timeout_s
    error_message = "timeout_s must be a whole number from 1 to 900."
  }
}

variable "architecture" {
  description = "Instruction set: x86_64 or arm64 (the image must match)."
  type        = string

  validation {
    condition     = contains(["x86_64", "arm64"], var.architecture)
    error_message = "architecture must be x86_64 or arm64."
  }
}

variable "reserved_concurrency" {
  description = "Reserved concurrent executions; -1 leaves the function unreserved (account pool)."
  type        = number

  validation {
    condition     = var.reserved_concurrency >= -1 && floor(var.reserved_concurrency) == var.reserved_concurrency
    error_message = "reserved_concurrency must be -1 (unreserved) or a whole number >= 0."
  }
}

variable "environment" {
  description = "Environment variables of the function."
  type        = map(string)
  default     = {}
}

variable "read_locations" {
  description = "S3 locations the function may list and read: bucket ARN plus key prefix ('' = whole bucket)."
  type = list(object({
    bucket_arn = string
    prefix     = string
  }))
  default = []
}

variable "write_locations" {
  description = "S3 locations the function may read, list and write: bucket ARN plus key prefix."
  type = list(object({
    bucket_arn = string
    prefix     = string
  }))
  default = []
}

variable "log_retention_days" {
  description = "Retention of the function's CloudWatch log group in days."
  type        = number
}

variable "tracing_mode" {
  description = "X-Ray tracing mode: PassThrough (no traces of its own) or Active."
  type        = string
  default     = "PassThrough"

  validation {
    condition     = contains(["PassThrough", "Active"], var.tracing_mode)
    error_message = "tracing_mode must be PassThrough or Active."
  }
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
