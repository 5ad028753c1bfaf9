"""LocalStack extension for cosmic-ai: launcher, Lambda executor and ECR provider."""
