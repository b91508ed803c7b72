"""Every test in this folder is part of the reliability suite (`pytest -m reliability`)."""

import pytest


def pytest_collection_modifyitems(items):
    for item in items:
        if "/reliability/" in str(item.fspath):
            item.add_marker(pytest.mark.reliability)
