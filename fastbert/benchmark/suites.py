"""The suites of ``fastbert bench``: each a list of row groups (models x tasks x dtypes x shapes, with the
providers measured together in every row of the group).

- ``quick``: fastbert against transformers ``sdpa`` on the embedded MiniLM, one shape without padding
  and one variable-length batch: the answer a new user wants, in well under a minute on two cores.
- ``cpu``: the full CPU suite: MiniLM and BERT-base against transformers, torch.compile, ONNX Runtime
  (plain, BERT-optimized, dynamic int8) and OpenVINO (fp32, int8 weights); sentence-transformers
  ``encode`` on a 2,000-sentence corpus; the scaling rows (batch size, padding fraction) of the PNG;
  the host-overhead rows (a 12-layer, hidden-32 BERT).
- ``families``: XLM-RoBERTa and MPNet base-size (random weights) against transformers (``sdpa``; MPNet's
  transformers class has only ``eager``, which is then the baseline), ONNX Runtime and OpenVINO, dense
  32 x 128 and the skewed batch (issue 26); also the last groups of ``cpu``.
- ``modernbert``: ModernBERT base-size (random weights) against transformers ``sdpa``, dense 32 x 128 and
  the skewed batch (issue 27); fastbert's rows are skipped, with the reason, until fastbert's registry
  has ``modernbert``. Its long inputs (2,048 / 4,096 / 8,192 tokens, time and peak memory, a fresh
  process per row) are ``fastbert bench --suite long`` (:mod:`fastbert.benchmark.long`).
- ``gpu-e2e``: BERT-base bf16, fastbert's default (CUDA graphs), its eager path and its ``sdpa`` path (on CUDA:
  packed tokens through torch's varlen flash attention, the plain-PyTorch packed rival) against transformers
  ``sdpa``, dense shapes; the same on variable-length batches with the packed graphs beside them; the
  host-overhead rows on the GPU. Each provider x shape is timed once.
- ``gpu-compile``: CUDA graphs at 1 x 128 and torch.compile of transformers and of fastbert at 32 x 128 and
  32 x 512, each beside fastbert and transformers ``sdpa`` in the same interleaved rounds.
"""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Group:
    """Rows measured with the same providers, interleaved inside each row."""

    name: str
    models: tuple[str, ...]
    shapes: tuple[str, ...]
    providers: tuple[str, ...]
    tasks: tuple[str, ...] = ("model",)
    dtypes: tuple[str, ...] = ("fp32",)
    baseline: str = "hf-sdpa"
    kind: str = "tensor"  # "sentences": sentence-transformers encode over a corpus
    corpus: int = 2000  # sentences (kind "sentences")
    corpus_lengths: tuple[int, int] = (5, 300)  # words per sentence, skewed
    batch_size: int = 32  # encode(batch_size=...) (kind "sentences")
    first_call_limit_s: float | None = None  # a provider whose first call takes longer is cut


CPU_RIVALS = ("onnxruntime", "ort-optimized", "ort-int8", "openvino", "openvino-int8")
ST_PROVIDERS = ("st-torch", "st-fastbert", "st-onnx", "st-openvino")
SCALING_BATCHES = ("1x128", "2x128", "4x128", "8x128", "16x128", "32x128")
SCALING_PADDING = ("16x128p25", "16x128p50", "16x128p75")  # with 16x128: 0% padding
OVERHEAD_SHAPES = ("1x8", "2x8p25")  # one row of 8 tokens; 2 rows padded to 8, one of them 4 long

FAMILY_SHAPES = ("32x128", "32xskewed8-256")
FAMILY_RIVALS = ("onnxruntime", "openvino")

SUITE_NAMES = ("quick", "cpu", "families", "modernbert", "gpu-e2e", "gpu-compile")


def _family_groups() -> list[Group]:
    return [
        Group(
            "families",
            ("xlm-roberta-base", "mpnet-base"),
            FAMILY_SHAPES,
            ("fastbert-sdpa", "hf-sdpa", *FAMILY_RIVALS),
            first_call_limit_s=180,
        ),
        Group("modernbert", ("modernbert-base",), FAMILY_SHAPES, ("fastbert-sdpa", "hf-sdpa")),
    ]


def suite_groups(name: str, device: str) -> list[Group]:
    """The row groups of a suite on a device (``cuda...`` or ``cpu``)."""
    cuda = str(device).startswith("cuda")
    fast = "fastbert-triton" if cuda else "fastbert-sdpa"
    half = ("bf16",) if cuda else ("fp32",)
    if name == "quick":
        return [Group("quick", ("minilm",), ("8x128", "32xskewed8-256"), (fast, "hf-sdpa"), dtypes=half)]
    if name == "cpu":  # cheap groups first: a time budget cuts only the last BERT-base rows
        return [
            Group("overhead", ("overhead",), OVERHEAD_SHAPES, ("fastbert-sdpa", "hf-sdpa")),
            Group("scaling", ("minilm",), SCALING_BATCHES + SCALING_PADDING, ("fastbert-sdpa", "hf-sdpa")),
            Group("sentences", ("minilm",), (), ST_PROVIDERS, baseline="st-torch", kind="sentences"),
            Group(
                "e2e",
                ("minilm", "bert-base"),
                ("8x128", "32xskewed8-256"),
                ("fastbert-sdpa", "hf-sdpa", "hf-compile", *CPU_RIVALS),
                first_call_limit_s=180,
            ),
            *_family_groups(),
        ]
    if name == "families":
        return _family_groups()[:1]
    if name == "modernbert":
        return _family_groups()[1:]
    if name == "gpu-e2e":
        return [
            Group(
                "e2e",
                ("bert-base",),
                ("32x128", "32x512", "1x128"),
                # fastbert-triton (CUDA graphs by default) beside its eager path, which the host's launches
                # bound, and the sdpa table (benchmarks/results/code-notes.md)
                ("fastbert-triton", "fastbert-triton-eager", "fastbert-sdpa", "hf-sdpa"),
                dtypes=("bf16",),
            ),
            # variable lengths: the packed graphs against the default (padded buckets), where padding costs the
            # default its lead over the packed forward (benchmarks/results/code-notes.md), and fastbert-sdpa:
            # packed tokens through torch's varlen flash attention
            Group(
                "varlen",
                ("bert-base",),
                ("32xuniform16-512", "32xskewed8-256", "64xskewed8-256"),
                (
                    "fastbert-triton",
                    "fastbert-triton-packed",
                    "fastbert-triton-eager",
                    "fastbert-sdpa",
                    "hf-sdpa",
                ),
                dtypes=("bf16",),
            ),
            Group(
                "overhead",
                ("overhead",),
                OVERHEAD_SHAPES,
                ("fastbert-triton", "fastbert-triton-eager", "fastbert-sdpa", "hf-sdpa"),
                dtypes=("bf16",),
            ),
        ]
    if name == "gpu-compile":
        # the CUDA-graph rows first: a short row that the compile rows' long first calls must not crowd out.
        # fastbert-triton is not here: at 1 x 128 its default replays the same graph as fastbert-triton-graphs
        # (step 1's e2e group times it); the compile shapes are the targets' (no target reads the varlen one)
        return [
            Group(
                "graphs",
                ("bert-base",),
                ("1x128",),
                ("fastbert-triton-graphs", "hf-sdpa", "hf-compile"),
                dtypes=("bf16",),
                first_call_limit_s=120,
            ),
            Group(
                "compile",
                ("bert-base",),
                ("32x128", "32x512"),
                ("fastbert-triton", "hf-sdpa", "hf-compile", "fastbert-compile"),
                dtypes=("bf16",),
                first_call_limit_s=150,
            ),
        ]
    raise ValueError(f"unknown suite {name!r}; known: {', '.join(SUITE_NAMES)}")


#: ``--tiny``: the same groups on tiny configs and shapes (a dry run in seconds on the CPU).
TINY_SHAPES = {
    "quick": ("2x16", "4xskewed4-32"),
    "e2e": ("2x16", "4xskewed4-32"),
    "varlen": ("4xuniform4-32",),  # padding, as on the GPU
    "compile": ("2x16",),
    "graphs": ("1x16",),
    "scaling": ("1x16", "2x16", "4x16", "4x16p50"),
    "overhead": OVERHEAD_SHAPES,
    "families": ("2x16", "4xskewed4-32"),
    "modernbert": ("2x16", "4xskewed4-32"),
}


def tiny(group: Group) -> Group:
    """A group's dry-run version: the ``tiny`` config (the host-overhead model stays; the other families'
    models their ``tiny-`` configs), tiny shapes, a corpus of 24 short sentences."""
    from fastbert.benchmark.workloads import TINY_MODELS

    if group.kind == "sentences":
        return replace(group, corpus=24, corpus_lengths=(3, 40), batch_size=8)
    if group.models == ("overhead",):
        models = group.models
    else:
        models = tuple(dict.fromkeys(TINY_MODELS.get(m, "tiny") for m in group.models))
    return replace(group, models=models, shapes=TINY_SHAPES.get(group.name, ("2x16",)))
