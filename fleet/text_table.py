"""Aligned plain-text tables for the CLI: a header line, then one line per row, two spaces apart.

No box drawing and no separator line, so `awk`, `cut` and `line.split()` read the output as well
as people do. `markdown_table` writes the same rows for a report.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any


def format_table(headers: Sequence[str], rows: Iterable[Sequence[Any]], *, right: Iterable[str] = ()) -> str:
    """`rows` of cells (None prints as empty); the columns named in `right` are right-aligned (numbers)."""
    right_columns = {headers.index(name) for name in right}
    text_rows = [[_cell(value) for value in row] for row in rows]
    widths = [len(header) for header in headers]
    for row in text_rows:
        if len(row) != len(headers):
            raise ValueError(f"a row of {len(row)} cells under {len(headers)} headers")
        widths = [max(width, len(cell)) for width, cell in zip(widths, row)]
    lines = [_line(headers, widths, right_columns)] + [_line(row, widths, right_columns) for row in text_rows]
    return "\n".join(lines)


def _cell(value: Any) -> str:
    return "" if value is None else str(value)


def _line(cells: Sequence[str], widths: list[int], right_columns: set[int]) -> str:
    padded = [cell.rjust(width) if index in right_columns else cell.ljust(width)
              for index, (cell, width) in enumerate(zip(cells, widths))]
    return "  ".join(padded).rstrip()


def markdown_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A Markdown (GFM) table: the header, its `---` line, one line per row (None prints as empty)."""
    lines = [headers, ["---"] * len(headers), *([_cell(value) for value in row] for row in rows)]
    return "\n".join("| " + " | ".join(line) + " |" for line in lines)
