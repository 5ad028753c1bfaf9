variable "repository_names" {
  description = "Map of logical image name (e.g. inference) to ECR repository name."
  type        = map(string)

  validation {
    condition     = alltrue([for n in values(var.repository_names) : can(regex("^[a-z0-9]+(?:[._-][a-z0-9]+)*$", n))])
    error_message = "Each ECR repository name must be lowercase letters and digits separated by '.', '_' or '-'."
  }
}

variable "keep_images" {
  description = "Number of tagged images each repository keeps; older ones expire."
  type        = number

  validation {
    condition     = var.keep_images >= 1 && floor(var.keep_images) == var.keep_images
    error_message = "keep_images must be a whole number >= 1."
  }
}

variable "force_delete" {
  description = "Delete repositories even when they still hold images."
  type        = bool
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
