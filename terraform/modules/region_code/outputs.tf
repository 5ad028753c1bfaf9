output "code" {
  description = "The region's short code (at most 7 characters for every region AWS names)."
  value       = local.code
}
