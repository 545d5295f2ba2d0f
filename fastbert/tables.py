"""Plain-text and markdown tables: the one small formatter of ``fastbert check`` and ``fastbert bench``."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

__all__ = ["format_table", "markdown_table"]


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def format_table(headers: Sequence[str], rows: Iterable[Sequence[Any]], numeric_right: bool = True) -> str:
    """A plain-text table: a header line, a rule, one line per row; columns padded to their widest
    cell, numbers right-aligned. Cells are ``str()``-ed (floats to 4 significant digits, None to ``-``)."""
    body = [[_cell(c) for c in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in body]) for i, h in enumerate(headers)]
    right = [
        numeric_right and bool(body) and all(_is_number(r[i]) for r in body if r[i] != "-")
        for i in range(len(headers))
    ]

    def line(cells):
        return "  ".join(c.rjust(w) if rj else c.ljust(w) for c, w, rj in zip(cells, widths, right)).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths])] + [line(r) for r in body])


def markdown_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """The same table in GitHub markdown."""
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join(" --- " for _ in headers) + "|"]
    out += ["| " + " | ".join(_cell(c).replace("|", "\\|") for c in row) + " |" for row in rows]
    return "\n".join(out)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
