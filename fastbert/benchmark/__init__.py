"""``fastbert bench`` and ``benchmarks/test_bench_*.py``: fastbert against transformers, torch.compile,
ONNX Runtime, OpenVINO and sentence-transformers, on the same weights and inputs.

- :mod:`~fastbert.benchmark.workloads`: models, tasks, shapes, inputs, the sentence corpus;
- :mod:`~fastbert.benchmark.providers`: each provider's availability (with the pip command), build, run;
- :mod:`~fastbert.benchmark.timing`: interleaved rounds and the one time budget;
- :mod:`~fastbert.benchmark.suites`: ``quick``, ``cpu``, ``gpu-e2e``, ``gpu-compile``;
- :mod:`~fastbert.benchmark.run`: the parity gate and the row loop (``rows.jsonl`` as measured);
- :mod:`~fastbert.benchmark.report`: tables (:func:`format_table`), JSON/CSV/TABLE.md/PNG, README tables;
- :mod:`~fastbert.benchmark.cli`: argparse glue.

The names below are imported lazily (``import fastbert.benchmark`` imports nothing but this table), so
``python -m fastbert.benchmark.report`` and ``fastbert check`` (which uses :func:`format_table`) stay light.
"""

import importlib

_LAZY: dict[str, str] = {
    "add_cli_arguments": "fastbert.benchmark.cli",
    "cli_main": "fastbert.benchmark.cli",
    "PROVIDERS": "fastbert.benchmark.providers",
    "BuildContext": "fastbert.benchmark.providers",
    "Provider": "fastbert.benchmark.providers",
    "ENV_FIELDS": "fastbert.benchmark.report",
    "ROW_FIELDS": "fastbert.benchmark.report",
    "format_table": "fastbert.benchmark.report",
    "markdown_table": "fastbert.benchmark.report",
    "read_rows": "fastbert.benchmark.report",
    "SCHEMA": "fastbert.benchmark.run",
    "BenchOptions": "fastbert.benchmark.run",
    "default_device": "fastbert.benchmark.run",
    "environment": "fastbert.benchmark.run",
    "run_benchmark": "fastbert.benchmark.run",
    "SUITE_NAMES": "fastbert.benchmark.suites",
    "Group": "fastbert.benchmark.suites",
    "suite_groups": "fastbert.benchmark.suites",
    "Budget": "fastbert.benchmark.timing",
    "BudgetSpent": "fastbert.benchmark.timing",
    "interleave": "fastbert.benchmark.timing",
    "DTYPES": "fastbert.benchmark.workloads",
    "MODEL_CONFIGS": "fastbert.benchmark.workloads",
    "TASKS": "fastbert.benchmark.workloads",
    "Shape": "fastbert.benchmark.workloads",
    "hf_config": "fastbert.benchmark.workloads",
    "hf_variant": "fastbert.benchmark.workloads",
    "load_source_model": "fastbert.benchmark.workloads",
    "make_inputs": "fastbert.benchmark.workloads",
    "model_flops": "fastbert.benchmark.workloads",
    "output_mask": "fastbert.benchmark.workloads",
    "parse_shape": "fastbert.benchmark.workloads",
    "task_output": "fastbert.benchmark.workloads",
}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'fastbert.benchmark' has no attribute {name!r}")


__all__ = sorted(_LAZY)
