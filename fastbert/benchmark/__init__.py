"""``fastbert bench`` and ``benchmarks/test_bench_*.py``: fastbert against transformers, torch.compile,
ONNX Runtime, OpenVINO and sentence-transformers, on the same weights and inputs.

- :mod:`~fastbert.benchmark.workloads`: models, tasks, shapes, inputs, the sentence corpus;
- :mod:`~fastbert.benchmark.providers`: each provider's availability (with the pip command), build, run;
- :mod:`~fastbert.benchmark.timing`: interleaved rounds and the one time budget;
- :mod:`~fastbert.benchmark.suites`: ``quick``, ``cpu``, ``gpu-e2e``, ``gpu-compile``;
- :mod:`~fastbert.benchmark.run`: the parity gate and the row loop (``rows.jsonl`` as measured);
- :mod:`~fastbert.benchmark.report`: tables (:func:`format_table`), JSON/CSV/TABLE.md/PNG, README tables;
- :mod:`~fastbert.benchmark.cli`: argparse glue.
"""

from fastbert.benchmark.cli import add_cli_arguments, cli_main
from fastbert.benchmark.providers import PROVIDERS, BuildContext, Provider
from fastbert.benchmark.report import ENV_FIELDS, ROW_FIELDS, format_table, markdown_table, read_rows
from fastbert.benchmark.run import SCHEMA, BenchOptions, default_device, environment, run_benchmark
from fastbert.benchmark.suites import SUITE_NAMES, Group, suite_groups
from fastbert.benchmark.timing import Budget, BudgetSpent, interleave
from fastbert.benchmark.workloads import (
    DTYPES,
    MODEL_CONFIGS,
    TASKS,
    Shape,
    hf_config,
    hf_variant,
    load_source_model,
    make_inputs,
    model_flops,
    output_mask,
    parse_shape,
    task_output,
)

__all__ = [
    "BenchOptions",
    "Budget",
    "BudgetSpent",
    "BuildContext",
    "DTYPES",
    "ENV_FIELDS",
    "Group",
    "MODEL_CONFIGS",
    "PROVIDERS",
    "Provider",
    "ROW_FIELDS",
    "SCHEMA",
    "SUITE_NAMES",
    "Shape",
    "TASKS",
    "add_cli_arguments",
    "cli_main",
    "default_device",
    "environment",
    "format_table",
    "hf_config",
    "hf_variant",
    "interleave",
    "load_source_model",
    "make_inputs",
    "markdown_table",
    "model_flops",
    "output_mask",
    "parse_shape",
    "read_rows",
    "run_benchmark",
    "suite_groups",
    "task_output",
]
