"""The course notebooks must run without printing warnings.

nbval (``pytest --nbval-lax``) executes every cell and fails on an exception, but a cell that
merely *warns* (``warnings.warn``, a deprecation, a library writing to stderr) passes. A
teaching notebook that shows students a red warning box is broken, so this hook fails such a
cell too: after nbval has run a cell, the outputs it collected (``IPyNbCell.test_outputs``)
are inspected, and a ``stderr`` stream, or a stdout line that looks like a warning
(``SomethingWarning: ...``), fails the cell with the offending text.
"""

from __future__ import annotations

import re

import pytest

try:
    from nbval.plugin import IPyNbCell, NbCellError
except ImportError:  # pragma: no cover - nbval is a dev dependency
    IPyNbCell = NbCellError = None

WARNING_LINE = re.compile(r"\b\w*Warning\b:")


def warning_outputs(outputs: list) -> list[str]:
    """Texts of the outputs that are warnings: stderr streams and warning-like stdout lines."""
    found = []
    for out in outputs or []:
        if out.get("output_type") != "stream":
            continue
        text = out.get("text", "")
        if out.get("name") == "stderr" and text.strip():
            found.append(text)
        elif any(WARNING_LINE.search(line) for line in text.splitlines()):
            found.append(text)
    return found


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item):
    result = yield
    if IPyNbCell is not None and isinstance(item, IPyNbCell):
        problems = warning_outputs(item.test_outputs)
        if problems:
            raise NbCellError(
                item.cell_num,
                "Cell printed a warning or wrote to stderr (the course must run warning-free)",
                item.cell.source,
                "\n".join(problems),
            )
    return result
