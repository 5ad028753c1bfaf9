"""Shared fixtures for the unit and integration suites."""
