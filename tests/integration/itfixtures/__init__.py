"""Fixtures of the integration suite, one module per area (star-imported by conftest.py)."""
