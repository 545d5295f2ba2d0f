"""bf16 where the CPU computes it: ``dtype="auto"`` picks bf16 only with avx512_bf16/AMX, fp32 elsewhere;
bf16 asked on a CPU that emulates it works, with one warning."""

import warnings

import pytest
import torch

import fastbert
from fastbert.core.tolerances import assert_close
from fastbert.quant import dtypes

TINY = dict(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37)


@pytest.fixture
def fresh(monkeypatch):
    monkeypatch.setattr(dtypes, "_SAID", set())
    return monkeypatch


def test_native_bf16_probe_agrees_with_cpuinfo():
    flags = dtypes.cpu_flags()
    if flags:  # the probe (torch's, or /proc/cpuinfo) agrees with the flags the kernel reports
        assert dtypes.cpu_has_native_bf16() == bool(flags & {"avx512_bf16", "amx_bf16", "amx_tile"})


@pytest.mark.parametrize("native", [False, True])
def test_auto_dtype_follows_the_cpu(fresh, native):
    fresh.setattr(dtypes, "cpu_has_native_bf16", lambda: native)
    model = fastbert.BertModel(fastbert.BertConfig(**TINY)).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "auto" never warns: it picks what is fast here
        out = fastbert.accelerate(model, dtype="auto")
    assert out.dtype == (torch.bfloat16 if native else torch.float32)


def test_bf16_on_an_emulating_cpu_works_with_one_warning(fresh, tmp_path):
    fresh.setattr(dtypes, "cpu_has_native_bf16", lambda: False)
    model = fastbert.BertModel(fastbert.BertConfig(**TINY)).eval()
    model.save_pretrained(tmp_path)
    ids = torch.randint(1, 99, (3, 10))
    mask = torch.ones_like(ids)
    mask[1, 6:] = 0
    with pytest.warns(UserWarning, match="without native bf16") as record:
        bf = fastbert.BertModel.from_pretrained(tmp_path, torch_dtype=torch.bfloat16)
        fastbert.accelerate(fastbert.BertModel.from_pretrained(tmp_path), dtype=torch.bfloat16)
    assert sum("native bf16" in str(w.message) for w in record) == 1
    # the parity rule in bf16: transformers' bf16 torch's own output, transformers in float64 the reference
    transformers = pytest.importorskip("transformers")
    theirs, exact = (
        transformers.BertModel.from_pretrained(tmp_path, dtype=t).eval()
        for t in (torch.bfloat16, torch.float64)
    )
    with torch.no_grad():
        out = bf(input_ids=ids, attention_mask=mask).last_hidden_state
        plain = theirs(input_ids=ids, attention_mask=mask).last_hidden_state
        ref = exact(input_ids=ids, attention_mask=mask).last_hidden_state
    assert out.dtype == plain.dtype == torch.bfloat16
    assert_close(out, plain, ref, torch.bfloat16, mask.bool(), what="bf16 last_hidden_state")


def test_unknown_dtype_is_refused():
    model = fastbert.BertModel(fastbert.BertConfig(**TINY)).eval()
    with pytest.raises(ValueError, match="dtype must be one of"):
        fastbert.accelerate(model, dtype="float8")


@pytest.mark.parametrize(("capability", "want"), [((7, 5), torch.float16), ((8, 0), torch.bfloat16)])
def test_auto_dtype_on_cuda_is_bf16_only_where_the_gpu_computes_it(monkeypatch, capability, want):
    """``dtype="auto"`` on CUDA read ``torch.cuda.is_bf16_supported()``, which is also true where bf16 is only
    emulated (compute capability below 8.0: a T4, a V100): it picked bf16 there, slow, and a dtype the
    triton kernels cannot run on such a GPU. bf16 needs compute capability 8.0; below, fp16. No GPU here:
    the capability query is stubbed."""
    monkeypatch.setattr(torch.version, "hip", None)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    assert dtypes.auto_dtype(torch.device("cuda", 0)) == want
