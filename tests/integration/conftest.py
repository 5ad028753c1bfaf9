"""Integration fixtures: a real LocalStack, the deployed stack and pipeline runs (see itfixtures/)."""

import pytest

from itfixtures.localstack import *  # noqa: F401,F403
from itfixtures.stack import *  # noqa: F401,F403

from itfixtures.pipeline import *  # noqa: F401,F403


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test under tests/integration needs local servers."""
    for item in items:
        item.add_marker(pytest.mark.integration)
