"""Test-only: timm.models."""
