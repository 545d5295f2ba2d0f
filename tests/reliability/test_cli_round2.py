"""The ``fastbert`` command line, issue 25 round 2: every argparse error of every subcommand is one line and
exit 2 (not argparse's usage); ``--device`` that this machine does not have is one line for ``check`` and
``bench`` (``run``'s: tests/reliability/test_run_round2.py); ``bench`` exits non-zero, saying why, when
nothing was timed.

All in this process (``fastbert.cli.main``): argparse's exit is a ``SystemExit`` with code 2.
"""

from __future__ import annotations

import pytest
import torch

from fastbert.benchmark.cli import nothing_timed
from fastbert.cli import main


def one_line_exit(capsys, argv: list[str], code: int = 2) -> str:
    try:
        got = main(argv)
    except SystemExit as e:  # argparse
        got = e.code
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert got == code, err
    assert len(lines) == 1 and "Traceback" not in err and "usage:" not in err, err
    return lines[0]


@pytest.mark.parametrize(
    "argv, needle",
    [
        (
            ["run", "--task", "fill-mask", "--batch-size", "0"],
            "argument --batch-size: must be at least 1, got 0",
        ),
        (["run", "--task", "fill-mask", "--top-k", "0"], "argument --top-k: must be at least 1, got 0"),
        (["run", "--task", "fill-mask", "--format", "xml"], "argument --format: invalid choice: 'xml'"),
        (
            ["run", "--task", "fill-mask", "--max-length", "x"],
            "argument --max-length: expected a whole number",
        ),
        (["run"], "the following arguments are required: --task"),
        (["run", "--task", "fill-mask", "--no-such-flag"], "unrecognized arguments: --no-such-flag"),
        (["check", "--dtypes"], "argument --dtypes: expected one argument"),
        (["check", "--config", "no-such-config"], "argument --config: invalid choice"),
        (["bench", "--suite", "nope"], "argument --suite: invalid choice: 'nope'"),
        (["bench", "--threads", "two"], "argument --threads: invalid int value"),
        (["convert", "only-src"], "the following arguments are required: DST"),
        (["convert", "a", "b", "--from-tf", "--from-flax"], "not allowed with argument"),
        (["embed"], "the following arguments are required"),
        (["embed", "x.txt", "--output", "o", "--no-such-flag"], "unrecognized arguments"),
        (
            ["serve", "--dtype", "float64"],
            "argument --dtype: must be one of float32, float16, bfloat16, auto",
        ),
        (
            ["serve", "--quantization", "int4"],
            "argument --quantization: must be one of int8, fp8 or none, got",
        ),
        (["no-such-command"], "argument COMMAND: invalid choice"),
        (["--no-such-option"], "unrecognized arguments"),
    ],
)
def test_every_argparse_error_is_one_line_exit_2(capsys, argv, needle):
    line = one_line_exit(capsys, argv)
    prog = "fastbert" if argv[0].startswith("-") or argv[0] == "no-such-command" else f"fastbert {argv[0]}"
    assert line.startswith(f"{prog}: error: ") and needle in line, line
    assert line.endswith(f"(see {prog} --help)"), line


def test_help_is_still_the_whole_help(capsys):
    with pytest.raises(SystemExit) as e:
        main(["run", "--help"])
    assert e.value.code == 0
    assert "usage:" in capsys.readouterr().out


# ------------------------------------------------------------------------------------ check/bench --device
DEVICES = ["banana", "cuda:99", "meta", "xpu:7"]
if not torch.cuda.is_available():
    DEVICES += ["cuda", "0", "cuda:1"]


@pytest.mark.parametrize("command", [["check", "--no-transformers"], ["bench", "--quick", "--tiny"]])
@pytest.mark.parametrize("device", DEVICES)
def test_device_that_is_not_here_is_one_line(capsys, command, device):
    line = one_line_exit(capsys, [*command, "--device", device])
    assert line.startswith(f"fastbert {command[0]}: error: --device '{device}'"), line


def test_list_providers_refuses_a_device_that_is_not_here(capsys):
    line = one_line_exit(capsys, ["bench", "--list-providers", "--device", "banana"])
    assert "is not a device" in line


# ------------------------------------------------------------------------------------ bench: nothing timed
def test_nothing_timed_says_why():
    rows = [
        {"status": "skipped", "note": "needs a CUDA GPU", "median_ms": None},
        {"status": "skipped", "note": "needs a CUDA GPU"},
        {"status": "cut", "note": "time budget spent"},
    ]
    line = nothing_timed(rows)
    assert line.startswith("nothing was timed (3 row(s), none with a time)")
    assert "2 row(s) skipped: needs a CUDA GPU" in line and "1 row(s) cut: time budget spent" in line
    assert "nothing was timed" in nothing_timed([])
    assert nothing_timed([*rows, {"status": "ok", "median_ms": 1.5}]) is None
    assert nothing_timed([{"status": "cut", "median_ms": 2.0, "note": "cut by the time budget"}]) is None


@pytest.mark.parametrize(
    "extra, why",
    [
        (["--time-budget", "0.001"], "time budget"),
        (["--providers", "fastbert-triton-graphs", "--device", "cpu"], "needs a CUDA GPU"),
    ],
)
def test_bench_with_nothing_timed_exits_1(capsys, tmp_path, extra, why):
    try:
        code = main(["bench", "--quick", "--tiny", "--no-plots", "--quiet", *extra])
    except SystemExit as e:
        code = e.code
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "nothing was timed" in line]
    assert code == 1, err
    assert len(lines) == 1 and why in lines[0], err
