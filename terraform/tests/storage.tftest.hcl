# The storage module alone against a mocked AWS provider: private, encrypted, TLS-only.

mock_provider "aws" {
  mock_data "aws_caller_identity" {
    defaults = {
      account_id = "123456789012"
    }
  }
  mock_data "aws_region" {
    defaults = {
      name = "us-east-1"
    }
  }
  mock_data "aws_partition" {
    defaults = {
      partition = "aws"
    }
  }
}

run "storage_is_private_encrypted_and_tls_only" {
  command = apply

  module {
    source = "./modules/storage"
  }

  variables {
    data_bucket_name        = "cosmicai-data-test"
    results_bucket_name     = "cosmicai-results-test"
    results_prefix          = "runs/"
    run_expiration_days     = 30
    noncurrent_version_days = 7
    force_destroy           = false
  }

  # Each bucket its own ARN (a mock default would give both one: a policy on the wrong bucket would pass).
  override_resource {
    target = aws_s3_bucket.this["data"]
    values = { arn = "arn:aws:s3:::cosmicai-data-test" }
  }
  override_resource {
    target = aws_s3_bucket.this["results"]
    values = { arn = "arn:aws:s3:::cosmicai-results-test" }
  }

  assert {
    condition = length(aws_s3_bucket_public_access_block.this) == 2 && alltrue([for b in aws_s3_bucket_public_access_block.this :
    b.block_public_acls && b.block_public_policy && b.ignore_public_acls && b.restrict_public_buckets])
    error_message = "every bucket must block all public access"
  }

  assert {
    condition = length(aws_s3_bucket_server_side_encryption_configuration.this) == 2 && alltrue([for c in aws_s3_bucket_server_side_encryption_configuration.this :
    one(one(c.rule).apply_server_side_encryption_by_default).sse_algorithm == "AES256"])
    error_message = "every bucket must have default server-side encryption"
  }

  assert {
    condition     = one(aws_s3_bucket_versioning.this["results"].versioning_configuration).status == "Enabled"
    error_message = "the results bucket must be versioned"
  }

  assert {
    condition = length(aws_s3_bucket_policy.tls_only) == 2 && alltrue([for p in aws_s3_bucket_policy.tls_only :
      jsondecode(p.policy).Statement[0].Effect == "Deny" &&
      jsondecode(p.policy).Statement[0].Condition.Bool["aws:SecureTransport"] == "false"
    ])
    error_message = "every bucket policy must deny non-TLS requests"
  }

  assert {
    condition = alltrue([for k, p in aws_s3_bucket_policy.tls_only :
    jsondecode(p.policy).Statement[0].Resource == ["arn:aws:s3:::cosmicai-${k}-test", "arn:aws:s3:::cosmicai-${k}-test/*"]])
    error_message = "each bucket policy covers its own bucket and its objects"
  }

  assert {
    condition = length(aws_s3_bucket_ownership_controls.this) == 2 && alltrue([for o in aws_s3_bucket_ownership_controls.this :
    one(o.rule).object_ownership == "BucketOwnerEnforced"])
    error_message = "ACLs must be disabled (BucketOwnerEnforced)"
  }

  assert {
    condition = anytrue([for r in aws_s3_bucket_lifecycle_configuration.this["results"].rule :
    r.status == "Enabled" && try(one(r.filter).prefix, "") == "runs/" && try(one(r.expiration).days, 0) == 30])
    error_message = "old runs under runs/ must expire after run_expiration_days"
  }

  assert {
    condition = length(aws_s3_bucket_lifecycle_configuration.this) == 2 && alltrue([for b in aws_s3_bucket_lifecycle_configuration.this : anytrue([for r in b.rule :
      r.status == "Enabled" && try(one(r.abort_incomplete_multipart_upload).days_after_initiation, 0) == 7 &&
    try(one(r.noncurrent_version_expiration).noncurrent_days, 0) == 7])])
    error_message = "every bucket must abort stale multipart uploads and expire noncurrent versions"
  }

  assert {
    condition     = length(aws_s3_bucket_lifecycle_configuration.this["data"].rule) > 0 && alltrue([for r in aws_s3_bucket_lifecycle_configuration.this["data"].rule : length(r.expiration) == 0])
    error_message = "input shards must never expire"
  }
}
