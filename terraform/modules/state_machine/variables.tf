variable "name" {
  description = "Name of the state machine (also names its role and log group)."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9_-]{1,51}$", var.name))
    error_message = "name must be 1-51 letters, digits, '-' or '_' (the role name adds '-<region code>-role', IAM allows 64)."
  }
}

variable "definition" {
  description = "Rendered ASL definition (JSON) with every placeholder substituted."
  type        = string

  validation {
    # "[$][{]" rather than "$${": checkov's HCL parser cannot read the escaped form.
    condition     = can(jsondecode(var.definition)) && length(regexall("[$][{]", var.definition)) == 0
    error_message = "definition must be valid JSON with no '$${...}' placeholder left."
  }
}

variable "lambda_function_arns" {
  description = "ARNs of the functions the state machine may invoke (and nothing else)."
  type        = list(string)

  validation {
    condition     = length(var.lambda_function_arns) > 0 && alltrue([for a in var.lambda_function_arns : can(regex("^arn:[^:]+:lambda:", a))])
    error_message = "lambda_function_arns must be a non-empty list of Lambda function ARNs."
  }
}

variable "results_bucket_arn" {
  description = "ARN of the results bucket (the Distributed Map reads the plan from it and writes results to it)."
  type        = string
}

variable "results_prefix" {
  description = "Key prefix of runs in the results bucket (ends in '/')."
  type        = string
}

# ERROR by default: at ALL every state of every Distributed Map child is logged (with
# execution data, each worker's input and output), which at survey scale costs more in
# CloudWatch ingestion than the Lambda time. Failures are still logged; ALL stays a choice.
variable "log_level" {
  description = "Execution-history logging level: ALL, ERROR or FATAL."
  type        = string
  default     = "ERROR"

  validation {
    condition     = contains(["ALL", "ERROR", "FATAL"], var.log_level)
    error_message = "log_level must be ALL, ERROR or FATAL (OFF would defeat the point)."
  }
}

variable "include_execution_data" {
  description = "Include state input/output in execution-history logs (payloads, S3 keys: volume and exposure)."
  type        = bool
  default     = false
}

variable "log_retention_days" {
  description = "Retention of the state machine's log group in days."
  type        = number
}

variable "tracing_enabled" {
  description = "Enable X-Ray tracing of executions."
  type        = bool
  default     = false
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
