variable "data_bucket_name" {
  description = "Name of the bucket holding the input shards."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.data_bucket_name))
    error_message = "data_bucket_name must be a valid S3 bucket name (3-63 chars, lowercase, digits, dots, hyphens)."
  }
}

variable "results_bucket_name" {
  description = "Name of the bucket receiving plans, predictions and summaries."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.results_bucket_name))
    error_message = "results_bucket_name must be a valid S3 bucket name (3-63 chars, lowercase, digits, dots, hyphens)."
  }
}

variable "results_prefix" {
  description = "Key prefix (ending in '/') under which runs are written; the expiry rule applies to it."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9!_.*'()-][A-Za-z0-9!_.*'()/-]*/$", var.results_prefix))
    error_message = "results_prefix must be a non-empty S3 key prefix ending in '/'."
  }
}

variable "run_expiration_days" {
  description = "Days after which objects of old runs under results_prefix expire."
  type        = number

  validation {
    condition     = var.run_expiration_days >= 1 && floor(var.run_expiration_days) == var.run_expiration_days
    error_message = "run_expiration_days must be a whole number >= 1."
  }
}

variable "noncurrent_version_days" {
  description = "Days a noncurrent (overwritten or deleted) object version is kept."
  type        = number

  validation {
    condition     = var.noncurrent_version_days >= 1 && floor(var.noncurrent_version_days) == var.noncurrent_version_days
    error_message = "noncurrent_version_days must be a whole number >= 1."
  }
}

variable "force_destroy" {
  description = "Delete the buckets even when they still hold objects (true for throw-away local stacks)."
  type        = bool
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
