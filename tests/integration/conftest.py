"""Integration fixtures: a real LocalStack, the deployed stack and pipeline runs (see itfixtures/)."""

from pathlib import Path

import pytest

from itfixtures.localstack import *  # noqa: F401,F403
from itfixtures.pipeline import *  # noqa: F401,F403
from itfixtures.stack import *  # noqa: F401,F403

HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test under tests/integration needs local servers; the hook sees the whole session's
    items (unit tests too when both folders run), so only ours are marked."""
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(pytest.mark.integration)
