"""Repository-wide pytest hooks.

Every item that nbval collects from a notebook (one per code cell) gets the ``notebooks``
marker, so the unit tests can be run on their own::

    python -m pytest -m "not notebooks and not browser"

and the course alone with ``python -m pytest -m notebooks``. The marker is registered in
pyproject.toml (``--strict-markers`` rejects unregistered ones).
"""

from __future__ import annotations

import pytest


@pytest.hookimpl(tryfirst=True)  # before pytest's own -m deselection sees the items
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.suffix == ".ipynb":
            item.add_marker(pytest.mark.notebooks)
