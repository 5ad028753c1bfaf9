output "data_bucket_name" {
  description = "Name of the input-shard bucket."
  value       = aws_s3_bucket.this["data"].bucket
}

output "data_bucket_arn" {
  description = "ARN of the input-shard bucket."
  value       = aws_s3_bucket.this["data"].arn
}

output "results_bucket_name" {
  description = "Name of the results bucket."
  value       = aws_s3_bucket.this["results"].bucket
}

output "results_bucket_arn" {
  description = "ARN of the results bucket."
  value       = aws_s3_bucket.this["results"].arn
}
