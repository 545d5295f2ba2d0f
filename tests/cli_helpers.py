"""``fastbert run`` in the test's own process: the same ``fastbert.cli.main`` that ``python -m fastbert``
runs, without a fresh interpreter's start-up (importing torch: about 3 s a call on 2 cores). For what does not
depend on the process: arguments, inputs, formats, files. Exit codes, signals, descriptors and stdin's bytes
as a process sees them stay in subprocesses (``tests/reliability/test_cli.py``)."""

from __future__ import annotations

import io
import subprocess
import sys

from fastbert.cli import main


def run_here(monkeypatch, capsys, *args: str, stdin: bytes | str = b"") -> subprocess.CompletedProcess:
    """``fastbert run ARGS`` with ``stdin`` as its standard input: its exit status, stdout and stderr (text),
    as ``subprocess.run(..., text=True)`` gives them."""
    data = stdin.encode() if isinstance(stdin, str) else stdin
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data), encoding="utf-8"))
    capsys.readouterr()  # what the test printed before is not the command's
    try:
        code = main(["run", *args])
    except SystemExit as e:  # argparse's usage errors end the process with status 2
        code = e.code
    out = capsys.readouterr()
    return subprocess.CompletedProcess(["fastbert", "run", *args], code, out.out, out.err)
