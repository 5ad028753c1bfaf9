# ---- where --------------------------------------------------------------------

variable "aws_region" {
  description = "AWS region of the stack (LocalStack accepts any)."
  type        = string
  default     = "us-east-1"

  validation {
    condition     = can(regex("^[a-z]{2}(-[a-z]+)+-[0-9]$", var.aws_region))
    error_message = "aws_region must look like us-east-1."
  }
}

variable "localstack_endpoint" {
  description = "LocalStack URL (e.g. http://127.0.0.1:4566); empty means real AWS. The only local/AWS switch."
  type        = string
  default     = ""

  validation {
    condition     = var.localstack_endpoint == "" || can(regex("^https?://[^/\\s]+/?$", var.localstack_endpoint))
    error_message = "localstack_endpoint must be empty (AWS) or an http(s)://host:port URL."
  }
}

variable "name_prefix" {
  description = "Prefix of every resource name (functions, roles, buckets, repositories)."
  type        = string
  default     = "cosmicai"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,22}[a-z0-9]$", var.name_prefix))
    error_message = "name_prefix must be 3-24 lowercase letters, digits or '-', starting with a letter."
  }
}

variable "tags" {
  description = "Extra tags on every resource."
  type        = map(string)
  default     = {}
}

# ---- storage ------------------------------------------------------------------

variable "data_bucket_name" {
  description = "Input-shard bucket name; empty derives <name_prefix>-data-<account>-<region>."
  type        = string
  default     = ""

  validation {
    condition     = var.data_bucket_name == "" || can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.data_bucket_name))
    error_message = "data_bucket_name must be empty or a valid S3 bucket name."
  }
}

variable "results_bucket_name" {
  description = "Results bucket name; empty derives <name_prefix>-results-<account>-<region>."
  type        = string
  default     = ""

  validation {
    condition     = var.results_bucket_name == "" || can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.results_bucket_name))
    error_message = "results_bucket_name must be empty or a valid S3 bucket name."
  }
}

variable "data_prefix" {
  description = "Key prefix of the input shards in the data bucket; the functions may read only below it."
  type        = string
  default     = "shards/"

  validation {
    condition     = can(regex("^([A-Za-z0-9!_.*'()-][A-Za-z0-9!_.*'()/-]*/)?$", var.data_prefix))
    error_message = "data_prefix must be empty (whole bucket) or an S3 key prefix ending in '/'."
  }
}

variable "results_prefix" {
  description = "Key prefix of runs in the results bucket; the pipeline may write only below it."
  type        = string
  default     = "runs/"

  validation {
    condition     = can(regex("^[A-Za-z0-9!_.*'()-][A-Za-z0-9!_.*'()/-]*/$", var.results_prefix))
    error_message = "results_prefix must be a non-empty S3 key prefix ending in '/'."
  }
}

variable "run_expiration_days" {
  description = "Days after which the objects of old runs expire."
  type        = number
  default     = 30

  validation {
    condition     = var.run_expiration_days >= 1 && floor(var.run_expiration_days) == var.run_expiration_days
    error_message = "run_expiration_days must be a whole number >= 1."
  }
}

variable "noncurrent_version_days" {
  description = "Days an overwritten or deleted object version is kept."
  type        = number
  default     = 7

  validation {
    condition     = var.noncurrent_version_days >= 1 && floor(var.noncurrent_version_days) == var.noncurrent_version_days
    error_message = "noncurrent_version_days must be a whole number >= 1."
  }
}

variable "force_destroy" {
  description = "Let destroy delete non-empty buckets and repositories (true for throw-away stacks)."
  type        = bool
  default     = false
}

# ---- images -------------------------------------------------------------------

variable "inference_image_tag" {
  description = "Tag of the inference image in its ECR repository (a content digest; tags are immutable)."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$", var.inference_image_tag)) && var.inference_image_tag != "latest"
    error_message = "inference_image_tag must be a valid image tag other than 'latest' (tags are immutable)."
  }
}

variable "orchestration_image_tag" {
  description = "Tag of the orchestration (Init/Summarize) image in its ECR repository."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$", var.orchestration_image_tag)) && var.orchestration_image_tag != "latest"
    error_message = "orchestration_image_tag must be a valid image tag other than 'latest' (tags are immutable)."
  }
}

variable "inference_image_uri" {
  description = "Full inference image URI overriding <repository_url>:<inference_image_tag> (e.g. another registry); empty = use the tag."
  type        = string
  default     = ""
}

variable "orchestration_image_uri" {
  description = "Full orchestration image URI overriding <repository_url>:<orchestration_image_tag>; empty = use the tag."
  type        = string
  default     = ""
}

variable "ecr_keep_images" {
  description = "Images each ECR repository keeps; older ones expire."
  type        = number
  default     = 10

  validation {
    condition     = var.ecr_keep_images >= 1 && floor(var.ecr_keep_images) == var.ecr_keep_images
    error_message = "ecr_keep_images must be a whole number >= 1."
  }
}

# ---- functions ----------------------------------------------------------------

variable "architecture" {
  description = "Lambda instruction set, x86_64 or arm64 (must match the images)."
  type        = string
  default     = "x86_64"

  validation {
    condition     = contains(["x86_64", "arm64"], var.architecture)
    error_message = "architecture must be x86_64 or arm64."
  }
}

variable "infer_memory_mb" {
  description = "Memory of the inference function in MB (sets its vCPUs: 1,769 MB = 1 vCPU)."
  type        = number
  default     = 1769

  validation {
    condition     = var.infer_memory_mb >= 1024 && var.infer_memory_mb <= 10240 && floor(var.infer_memory_mb) == var.infer_memory_mb
    error_message = "infer_memory_mb must be a whole number from 1024 (the model needs it) to 10240."
  }
}

variable "infer_timeout_s" {
  description = "Timeout of the inference function in seconds."
  type        = number
  default     = 900

  validation {
    condition     = var.infer_timeout_s >= 10 && var.infer_timeout_s <= 900 && floor(var.infer_timeout_s) == var.infer_timeout_s
    error_message = "infer_timeout_s must be a whole number from 10 to 900."
  }
}

variable "infer_reserved_concurrency" {
  description = "Reserved concurrency of the inference function (caps the fan-out); -1 = unreserved."
  type        = number
  default     = -1

  validation {
    condition     = var.infer_reserved_concurrency >= -1 && floor(var.infer_reserved_concurrency) == var.infer_reserved_concurrency
    error_message = "infer_reserved_concurrency must be -1 or a whole number >= 0."
  }
}

variable "infer_backend" {
  description = "Engine backend the inference function loads at INIT (its COSMICAI_BACKEND): torch, or openvino (the IR baked into the inference image; the INIT never imports torch)."
  type        = string
  default     = "torch"

  validation {
    condition     = contains(["torch", "openvino"], var.infer_backend)
    error_message = "infer_backend must be torch or openvino."
  }
}

variable "init_memory_mb" {
  description = "Memory of the Init function in MB."
  type        = number
  default     = 512

  validation {
    condition     = var.init_memory_mb >= 128 && var.init_memory_mb <= 10240 && floor(var.init_memory_mb) == var.init_memory_mb
    error_message = "init_memory_mb must be a whole number from 128 to 10240."
  }
}

variable "init_timeout_s" {
  description = "Timeout of the Init function in seconds (it lists the input and reads shard headers)."
  type        = number
  default     = 300

  validation {
    condition     = var.init_timeout_s >= 10 && var.init_timeout_s <= 900 && floor(var.init_timeout_s) == var.init_timeout_s
    error_message = "init_timeout_s must be a whole number from 10 to 900."
  }
}

variable "summarize_memory_mb" {
  description = "Memory of the Summarize function in MB (it merges every prediction catalog)."
  type        = number
  default     = 1769

  validation {
    condition     = var.summarize_memory_mb >= 128 && var.summarize_memory_mb <= 10240 && floor(var.summarize_memory_mb) == var.summarize_memory_mb
    error_message = "summarize_memory_mb must be a whole number from 128 to 10240."
  }
}

variable "summarize_timeout_s" {
  description = "Timeout of the Summarize function in seconds."
  type        = number
  default     = 900

  validation {
    condition     = var.summarize_timeout_s >= 10 && var.summarize_timeout_s <= 900 && floor(var.summarize_timeout_s) == var.summarize_timeout_s
    error_message = "summarize_timeout_s must be a whole number from 10 to 900."
  }
}

variable "orchestration_reserved_concurrency" {
  description = "Reserved concurrency of Init and Summarize each; -1 = unreserved."
  type        = number
  default     = -1

  validation {
    condition     = var.orchestration_reserved_concurrency >= -1 && floor(var.orchestration_reserved_concurrency) == var.orchestration_reserved_concurrency
    error_message = "orchestration_reserved_concurrency must be -1 or a whole number >= 0."
  }
}

variable "log_level" {
  description = "COSMICAI_LOG_LEVEL of every function."
  type        = string
  default     = "INFO"

  validation {
    condition     = contains(["DEBUG", "INFO", "WARNING", "ERROR"], var.log_level)
    error_message = "log_level must be DEBUG, INFO, WARNING or ERROR."
  }
}

variable "extra_environment" {
  description = "Extra environment variables for every function (no secrets: they are not KMS-encrypted)."
  type        = map(string)
  default     = {}

  validation {
    condition     = alltrue([for k in keys(var.extra_environment) : can(regex("^[A-Za-z][A-Za-z0-9_]*$", k)) && !startswith(k, "AWS_")])
    error_message = "extra_environment keys must be identifiers and must not start with AWS_ (reserved by Lambda)."
  }
}

# ---- observability ------------------------------------------------------------

variable "log_retention_days" {
  description = "Retention of every CloudWatch log group in days."
  type        = number
  default     = 14

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be a value CloudWatch Logs accepts (1, 3, 5, 7, 14, 30, 60, 90, ... 3653)."
  }
}

variable "state_machine_log_level" {
  description = "Step Functions execution-history log level: ALL, ERROR or FATAL. ERROR (default) logs failures only; ALL logs every state of every Map child (CloudWatch ingestion grows with the run)."
  type        = string
  default     = "ERROR"

  validation {
    condition     = contains(["ALL", "ERROR", "FATAL"], var.state_machine_log_level)
    error_message = "state_machine_log_level must be ALL, ERROR or FATAL."
  }
}

variable "xray_tracing" {
  description = "Enable X-Ray tracing on the functions and the state machine."
  type        = bool
  default     = false
}

variable "asl_template_path" {
  description = "Path of the ASL template; empty = statemachine/pipeline.asl.json of this repository."
  type        = string
  default     = ""
}
