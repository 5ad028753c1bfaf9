# Every bucket: abandoned multipart uploads and overwritten versions are cleaned up.
# The results bucket also expires old runs below results_prefix.
resource "aws_s3_bucket_lifecycle_configuration" "this" {
  for_each = aws_s3_bucket.this

  bucket = each.value.id

  rule {
    id     = "noncurrent-and-multipart-cleanup"
    status = "Enabled"

    # The whole bucket, written as an empty prefix: LocalStack reads `filter {}` back
    # as `Prefix = ""`, and the provider then waits a minute for them to agree.
    filter {
      prefix = ""
    }

    noncurrent_version_expiration {
      noncurrent_days = var.noncurrent_version_days
    }

    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }
  }

  dynamic "rule" {
    for_each = each.key == "results" ? [var.results_prefix] : []
    content {
      id     = "expire-old-runs"
      status = "Enabled"

      filter {
        prefix = rule.value
      }

      expiration {
        days = var.run_expiration_days
      }
    }
  }

  depends_on = [aws_s3_bucket_versioning.this]
}
