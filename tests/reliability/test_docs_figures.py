"""README.md and docs/*.md (issue 25 round 2): every measured figure — a time in ms, a wall time, a rate, a
speed-up — names the CPU it was measured on (or the results folder that records it), since figures of one
CPU do not carry over to another; and the accelerate claim says what holds for quantised precisions.

A paragraph (or a table with the paragraph before it) holding a figure must name a CPU ("AMD EPYC",
"Xeon", "Zen", "GPU"/"H100"/"H200" for GPU figures) or a ``benchmarks/results/`` folder.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]

# a measured figure: 12.3 ms, 1.92×, 285 rows/s, 77.8 sentences/s, 21.6 s wall, 7 min 9 s
FIGURE = re.compile(
    r"\d+(?:\.\d+)?\s?ms\b|\d\.\d+×|\d+(?:\.\d+)?\s?(?:rows|sentences|tokens)/s|\d+(?:\.\d+)? s wall|\d+ min \d+ s"
)
NAMED = re.compile(r"AMD EPYC|Xeon|Zen \d|benchmarks/results/|H100|H200|A100")


def _blocks(text: str) -> list[str]:
    """Paragraphs; a table or code block is joined to the paragraph before it."""
    blocks: list[str] = []
    for chunk in re.split(r"\n\s*\n", text):
        starts_table = chunk.lstrip().startswith(("|", "```"))
        if starts_table and blocks:
            blocks[-1] += "\n" + chunk
        else:
            blocks.append(chunk)
    return blocks


def _unnamed(path: Path) -> list[str]:
    return [
        " ".join(b.split())[:160]
        for b in _blocks(path.read_text(encoding="utf-8"))
        if FIGURE.search(b) and not NAMED.search(b)
    ]


@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.name)
def test_every_figure_names_its_cpu(path):
    assert _unnamed(path) == []


def test_the_check_catches_an_unnamed_figure(tmp_path):
    doc = tmp_path / "x.md"
    doc.write_text("Fast: 21.6 s wall here, 1.92× on 8 × 128.\n\nMeasured on an AMD EPYC: 9.6 ms.\n")
    assert _unnamed(doc) == ["Fast: 21.6 s wall here, 1.92× on 8 × 128."]


def test_accelerate_claim_says_what_holds_for_quantised_precisions():
    text = " ".join((REPO / "README.md").read_text(encoding="utf-8").split())
    assert "every `output_value` and `precision`" not in text
    assert "`int8`/`uint8`" in text and "one quantisation step" in text
