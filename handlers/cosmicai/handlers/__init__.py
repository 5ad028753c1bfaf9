"""Thin AWS Lambda entry modules: parse the event, call the library, return."""
