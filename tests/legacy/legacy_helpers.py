"""Paths and helpers shared by the legacy-checkpoint tests (the fixtures themselves are in conftest.py)."""

from __future__ import annotations

import shutil
from pathlib import Path

import torch

from fastbert import legacy
from fastbert.config import BertConfig
from fastbert.core.tolerances import assert_close

FIXTURES = Path(__file__).parent.parent / "fixtures" / "legacy-bert"
GOOGLE = FIXTURES / "google_ckpt"
INDEX = "bert_model.ckpt.index"
SHARD = "bert_model.ckpt.data-00000-of-00001"
EXTRA_HINT = r"\(the \[legacy\] extra: pip install '\.\[legacy\]' in a checkout of fastbert"


def assert_same_weights(got: dict[str, torch.Tensor], want: dict[str, torch.Tensor]) -> None:
    """The same keys, dtypes, shapes and values, to the bit."""
    assert sorted(got) == sorted(want)
    for k in want:
        assert got[k].dtype == want[k].dtype, k
        assert got[k].shape == want[k].shape, k
        assert torch.equal(got[k], want[k]), k


def assert_same_outputs(got, want, names: list[str]) -> None:
    """fp32 outputs (attributes of model outputs, or keys of a dict) of the same weights: the parity rule's
    fp32 floor alone (a kernel transposed by mistake moves the logits by ~1e-4, far above it)."""
    for name in names:
        ours = got[name] if isinstance(got, dict) else getattr(got, name)
        ref = want[name] if isinstance(want, dict) else getattr(want, name)
        assert_close(ours, None, ref, torch.float32, what=name)


def assert_pretraining_outputs(out, expected) -> None:
    """A BertForPreTraining's outputs (with hidden states) are the fixture's expected outputs."""
    assert_same_outputs(out, expected, ["prediction_logits", "seq_relationship_logits"])
    hidden = {f"hidden_states.{i}": h for i, h in enumerate(out.hidden_states)}
    assert len(hidden) == 3
    assert_same_outputs(hidden, expected, list(hidden))


def with_head(reference, head: str, n: int = 3) -> dict[str, torch.Tensor]:
    """The fixture's base model plus a random head (``classifier`` with n labels, or ``qa_outputs``)."""
    g = torch.Generator().manual_seed(1234)
    state = {k: v for k, v in reference.items() if k.startswith("bert.")}
    if head == "qa_outputs":  # BertForQuestionAnswering has no pooler
        state = {k: v for k, v in state.items() if "pooler" not in k}
    rows = 2 if head == "qa_outputs" else n
    state[f"{head}.weight"] = torch.randn(rows, 32, generator=g) * 0.02
    state[f"{head}.bias"] = torch.randn(rows, generator=g) * 0.1
    return state


def copy_config(folder: Path, config: BertConfig, **changes) -> None:
    """Write ``config`` with ``changes`` into ``folder``."""
    data = config.to_dict()
    if "num_labels" in changes:
        data.pop("id2label")
        data.pop("label2id")
    BertConfig.from_dict(data, **changes).save_pretrained(folder)


def copy_files(src: Path, dst: Path, names) -> Path:
    """``dst`` holding copies of the files ``names`` of ``src``."""
    dst.mkdir(parents=True, exist_ok=True)
    for n in names:
        shutil.copyfile(src / n, dst / n)
    return dst


def corrupt(src: Path, dst: Path, *, truncate: int | None = None, flip: int | None = None) -> Path:
    """A copy of ``src`` at ``dst``, cut after ``truncate`` bytes and/or with the byte at ``flip`` inverted."""
    data = bytearray(src.read_bytes())
    if truncate is not None:
        data = data[:truncate]
    if flip is not None:
        data[flip] ^= 0xFF
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_bytes(bytes(data))
    return dst


def convert(src, dst, **kwargs) -> str:
    """:func:`fastbert.legacy.convert_checkpoint` without its log lines."""
    return legacy.convert_checkpoint(str(src), str(dst), log=lambda _: None, **kwargs)


def hf_outputs(transformers, cls_name: str, config: BertConfig, state, inputs):
    """transformers' ``cls_name`` with ``state`` loaded (strictly, but for position ids) run on ``inputs``."""
    fields = {k: v for k, v in config.to_dict().items() if k not in ("torch_dtype", "architectures")}
    model = getattr(transformers, cls_name)(transformers.BertConfig(**fields))
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert not unexpected and all("position_ids" in k for k in missing), (missing, unexpected)
    model.eval()
    with torch.no_grad():
        return model(**inputs)


def assert_converted_like(transformers, dst: Path, cls_name: str, config, state, inputs, names) -> None:
    """The converted folder ``dst``, loaded by transformers, gives the outputs of ``state`` in ``cls_name``."""
    model = getattr(transformers, cls_name).from_pretrained(dst).eval()
    assert model.config.architectures == [cls_name]
    with torch.no_grad():
        got = model(**inputs)
    assert_same_outputs(got, hf_outputs(transformers, cls_name, config, state, inputs), names)
