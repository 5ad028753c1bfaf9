"""Test-only stand-in for the few timm 0.4.12 classes the reference checkpoint names."""
