"""Marks for the standard suites' tests, named in a table (see `pytest_collection_modifyitems`)."""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Apply the marks a module lists in ``STANDARD_MARKS`` ({test name: [marks]}).

    A table instead of overriding the suites' methods: langchain-tests' own
    ``test_no_overrides_DO_NOT_OVERRIDE`` fails for any overridden test not marked xfail.
    """
    for item in items:
        table = getattr(getattr(item, "module", None), "STANDARD_MARKS", None)
        name = getattr(item, "originalname", item.name)
        for mark in (table or {}).get(name, ()):
            item.add_marker(mark)
