"""Corpus embedding: ``fastbert embed`` and :func:`embed`, one module a stage.

A corpus (text, JSON lines, CSV or Parquet files) becomes Parquet shards of ``id`` + ``vector`` (a
fixed-size list of float32 or float16) and a ``_manifest.json``::

    fastbert embed docs/*.jsonl --column text --id-column id --output vectors/

How it works, one way through:

1. **Plan.** Every input is scanned once, streaming (text / JSON lines: line offsets; CSV: a streaming
   count; Parquet: its footer). The corpus is cut into shards of ``shard_rows`` input rows, never across
   files, so the shard of a row depends on the input alone, not on timing or devices.
2. **Read.** A shard's rows are read on their own (a seek to the shard's byte offset for line formats,
   the right row groups for Parquet): memory holds one shard, whatever the corpus size.
3. **Batch.** Inside a shard, rows are taken a window at a time, sorted by token length (longest
   first) and cut into batches of at most ``max_batch_tokens`` padded tokens (rows × longest row, TEI's
   knob); vectors go back to input order.
4. **Write.** A shard is written to a temporary name, fsynced and renamed: a shard file that exists is
   complete. A rerun of the same command skips finished shards; the manifest records the job (model,
   revision, dtype, pooling, inputs with sizes and mtimes...) and a rerun with another job is refused.
   A run holds the output folder's lock to its end: a second run into the folder is refused meanwhile.
   The folder is the whole dataset once its manifest says ``"status": "complete"``.

The model runs through the public pipeline API only (``fastbert.pipeline(task, model=..., device=...)``,
its ``tokenizer`` and a call on a list of texts). ``devices=["cuda:0", "cuda:1"]`` runs one spawned
process per device over disjoint shards; ``engine="ray"`` runs the same plan as a Ray Data pipeline.

The modules, in the order a job meets them: ``job`` (the options, checked), ``devices``, ``inputs`` (globs,
formats, local paths and URIs), ``plan`` (shards), ``resume`` (what the output folder already holds),
``lock`` (one run a folder), ``readers`` (the scan of a file, then one reader a format), ``batching`` (the
token budget), ``encoder`` (the pipeline), ``writer`` (shards),
``manifest``, the engines ``local`` (one device or one worker a device) and ``ray_engine``, ``cli``
(``fastbert embed``), and ``api`` (:func:`embed`, the pipeline of the stages).
"""

from __future__ import annotations

import sys

from fastbert import FunctionModule

from .api import DuplicateIdWarning, embed
from .batching import token_budget_batches
from .cli import add_cli_arguments, cli_main
from .encoder import Encoder, encode_rows
from .inputs import FORMATS, expand_inputs, format_of
from .job import (
    DEFAULT_MAX_BATCH_TOKENS,
    DEFAULT_MAX_BATCH_TOKENS_CPU,
    DEFAULT_SHARD_ROWS,
    DEFAULT_WINDOW,
    FEATURE_POOLING,
    ON_ERROR,
    OUTPUT_DTYPES,
    TASKS,
    Job,
)
from .lock import OutputInUse
from .manifest import MANIFEST, MANIFEST_VERSION
from .output import read_output
from .plan import InputFile, Shard, plan_shards
from .ray_engine import _CRASH_ENV
from .readers import Row, read_shard
from .writer import output_schema, shard_metadata, write_shard

__all__ = [
    "DEFAULT_MAX_BATCH_TOKENS",
    "DEFAULT_MAX_BATCH_TOKENS_CPU",
    "DEFAULT_SHARD_ROWS",
    "DEFAULT_WINDOW",
    "DuplicateIdWarning",
    "FEATURE_POOLING",
    "FORMATS",
    "MANIFEST",
    "MANIFEST_VERSION",
    "ON_ERROR",
    "OUTPUT_DTYPES",
    "OutputInUse",
    "TASKS",
    "Encoder",
    "InputFile",
    "Job",
    "Row",
    "Shard",
    "_CRASH_ENV",
    "add_cli_arguments",
    "cli_main",
    "embed",
    "encode_rows",
    "expand_inputs",
    "format_of",
    "output_schema",
    "plan_shards",
    "read_output",
    "read_shard",
    "shard_metadata",
    "token_budget_batches",
    "write_shard",
]

sys.modules[__name__].__class__ = FunctionModule  # fastbert.embed(...) calls embed()
