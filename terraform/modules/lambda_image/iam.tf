data "aws_region" "current" {}

# IAM is global but functions are regional: the same name_prefix deployed in two regions
# would claim the same role names, so the role name carries the region's short code.
module "region_code" {
  source = "../region_code"
  region = data.aws_region.current.name
}

locals {
  # At most 64 characters (IAM's limit): function_name <= 51, the code <= 7 ("-<code>-role" <= 13).
  role_name = "${var.function_name}-${module.region_code.code}-role"
}

# Policies are built with jsonencode (not aws_iam_policy_document) so that their
# content is known at plan time and `terraform test` can assert on it.
locals {
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Action    = "sts:AssumeRole"
      Principal = { Service = "lambda.amazonaws.com" }
    }]
  })

  all_locations = concat(var.read_locations, var.write_locations)
  # ListBucket is scoped per bucket with an s3:prefix condition; group prefixes by bucket.
  list_prefixes = { for loc in local.all_locations : loc.bucket_arn => "${loc.prefix}*"... }

  log_statements = [{
    Sid      = "OwnLogGroup"
    Effect   = "Allow"
    Action   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    Resource = ["${aws_cloudwatch_log_group.this.arn}:*"]
  }]

  list_statements = [for bucket, prefixes in local.list_prefixes : {
    Effect    = "Allow"
    Action    = ["s3:ListBucket"]
    Resource  = [bucket]
    Condition = { StringLike = { "s3:prefix" = distinct(prefixes) } }
  }]

  read_statements = length(var.read_locations) == 0 ? [] : [{
    Sid      = "ReadObjects"
    Effect   = "Allow"
    Action   = ["s3:GetObject"]
    Resource = distinct([for loc in var.read_locations : "${loc.bucket_arn}/${loc.prefix}*"])
  }]

  write_statements = length(var.write_locations) == 0 ? [] : [{
    Sid      = "ReadWriteObjects"
    Effect   = "Allow"
    Action   = ["s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"]
    Resource = distinct([for loc in var.write_locations : "${loc.bucket_arn}/${loc.prefix}*"])
  }]

  # X-Ray's write actions support no resource-level scoping.
  xray_statements = var.tracing_mode != "Active" ? [] : [{
    Sid      = "XRayTraces"
    Effect   = "Allow"
    Action   = ["xray:PutTraceSegments", "xray:PutTelemetryRecords"]
    Resource = ["*"]
  }]

  policy = jsonencode({
    Version   = "2012-10-17"
    Statement = concat(local.log_statements, local.list_statements, local.read_statements, local.write_statements, local.xray_statements)
  })
}

resource "aws_iam_role" "this" {
  name               = local.role_name
  description        = "Execution role of ${var.function_name}: its own logs and the S3 prefixes it needs."
  assume_role_policy = local.assume_role_policy
  tags               = var.tags

  lifecycle {
    precondition {
      condition     = length(local.role_name) <= 64
      error_message = "The role name ${local.role_name} is longer than IAM's 64 characters: shorten function_name (name_prefix)."
    }
  }
}

resource "aws_iam_role_policy" "this" {
  name   = "${var.function_name}-access"
  role   = aws_iam_role.this.id
  policy = local.policy
}
