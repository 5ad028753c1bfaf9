# Two buckets: input shards (read-only for the pipeline) and results (runs).
locals {
  buckets = {
    data    = var.data_bucket_name
    results = var.results_bucket_name
  }
}

resource "aws_s3_bucket" "this" {
  #checkov:skip=CKV_AWS_18:Access logging would need a third bucket per stack; every request the pipeline makes is already attributable through the per-function IAM roles and CloudTrail.
  #checkov:skip=CKV_AWS_144:Cross-region replication doubles storage cost; shards are re-creatable from the survey archive and runs from the shards.
  #checkov:skip=CKV_AWS_145:SSE-S3 (AES256) is used on purpose: SSE-KMS adds a KMS request per GET/PUT, which at survey scale (millions of shard reads) costs more than the inference; no data here is sensitive.
  #checkov:skip=CKV2_AWS_62:Nothing consumes bucket events; the state machine is started explicitly by `cosmicai invoke`.
  for_each = local.buckets

  bucket        = each.value
  force_destroy = var.force_destroy
  tags          = merge(var.tags, { "cosmicai:bucket-role" = each.key })
}

resource "aws_s3_bucket_ownership_controls" "this" {
  for_each = aws_s3_bucket.this

  bucket = each.value.id
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_public_access_block" "this" {
  for_each = aws_s3_bucket.this

  bucket                  = each.value.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_server_side_encryption_configuration" "this" {
  for_each = aws_s3_bucket.this

  bucket = each.value.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm = "AES256"
    }
    bucket_key_enabled = false
  }
}

resource "aws_s3_bucket_versioning" "this" {
  for_each = aws_s3_bucket.this

  bucket = each.value.id
  versioning_configuration {
    status = "Enabled"
  }
}
