"""Test-only stand-in for the reference's `blocks` package (module and class names only)."""
