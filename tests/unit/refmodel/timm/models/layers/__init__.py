"""Test-only: timm.models.layers."""
