"""antiberty fill-mask top-1 agreement with fp32: the int8 copy and the bf16 model, with the masks, seeds and
calibration of ``tests/quant/test_int8.py::test_antiberty_int8_fill_mask_top1_gate`` (a quality figure, not a
timing: deterministic on a given CPU, whose int8 scheme depends on its instruction set).

    PYTHONPATH=. python3 benchmarks/results/cpu-amd-epyc/precision/antiberty_fill_mask.py [--single] >> \
        benchmarks/results/cpu-amd-epyc/precision/antiberty_fill_mask.jsonl

Masking "test": 8 copies of each variant, copy j with every 8th residue from j masked (the test's).
``--single`` adds masking "single": one copy per residue, that residue alone masked.
(The committed row is of the test's masking; a ``--single`` run was started on 2026-12-05 and stopped
unfinished after 18 minutes on the shared 2-core machine, so no "single" row exists yet.)
Needs ``pip install antiberty==0.1.3`` (the test extra).
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import warnings

import torch

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), *[os.pardir] * 4))
sys.path[:0] = [os.path.join(ROOT, "tests"), ROOT]

from model_helpers import antiberty_folder  # noqa: E402
from quant.test_int8 import _mutants  # noqa: E402

import fastbert  # noqa: E402
from fastbert.quant import quantize  # noqa: E402


def cpu() -> dict:
    info = {}
    with open("/proc/cpuinfo") as f:
        for line in f:
            key, _, value = line.partition(":")
            key = key.strip()
            if key in ("model name", "cpu family", "model", "flags") and key not in info:
                info[key] = value.strip()
    flags = set(info.get("flags", "").split())
    wanted = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "avx_vnni", "amx_bf16", "amx_int8")
    return {
        "cpu": info.get("model name"),
        "cpu_details": f"family {info.get('cpu family')} model {info.get('model')}; flags "
        + " ".join(f for f in wanted if f in flags),
        "flags_absent": " ".join(f for f in wanted if f not in flags),
    }


def masks(n: int, single: bool) -> torch.Tensor:
    """Boolean masks over a sequence of n ids ([CLS] and [SEP] at the ends are never masked)."""
    if single:
        m = torch.zeros(n - 2, n, dtype=torch.bool)
        m[torch.arange(n - 2), torch.arange(1, n - 1)] = True
        return m
    m = torch.zeros(8, n, dtype=torch.bool)
    for j in range(8):
        m[j, 1 + j : n - 1 : 8] = True
    return m


def main() -> None:
    single = "--single" in sys.argv[1:]
    warnings.simplefilter("ignore")
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", torch.get_num_threads())))
    with tempfile.TemporaryDirectory() as tmp:
        folder = antiberty_folder(tmp)
        tok = fastbert.AutoTokenizer.from_pretrained(folder)
        fp32 = fastbert.BertForMaskedLM.from_pretrained(folder)
        int8 = fastbert.BertForMaskedLM.from_pretrained(folder)
        bf16 = fastbert.BertForMaskedLM.from_pretrained(folder, torch_dtype=torch.bfloat16)
        g = torch.Generator().manual_seed(0)
        quantize(int8, "int8", tokenizer=tok, calibration=_mutants(4, 6, g))  # as the test: calibrate first,
        variants = _mutants(3, 6, g)  # then draw the evaluated variants from the same generator
    int8_linears = sum(d.precision == "int8" for d in int8.quantization.layers)
    for kind in ("test", "single") if single else ("test",):
        same = {"int8": 0, "bf16": 0}
        total = 0
        with torch.no_grad():
            for seq in variants:
                ids = tok([seq], return_tensors="pt")["input_ids"][0]
                m = masks(len(ids), kind == "single")
                batch = ids.expand(len(m), -1).masked_fill(m, tok.mask_token_id)
                ref = fp32(input_ids=batch).logits[m].argmax(-1)
                for name, model in (("int8", int8), ("bf16", bf16)):
                    same[name] += (model(input_ids=batch).logits[m].float().argmax(-1) == ref).sum().item()
                total += int(m.sum())
        try:
            commit = subprocess.run(
                ["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True, text=True
            ).stdout.strip()
        except OSError:
            commit = None
        row = {
            "what": "antiberty fill-mask top-1 unchanged against fp32",
            "masking": kind,
            "masked_positions": total,
            "int8_same": same["int8"],
            "int8_pct": round(100 * same["int8"] / total, 2),
            "int8_linears": f"{int8_linears}/{len(int8.quantization.layers)}",
            "bf16_same": same["bf16"],
            "bf16_pct": round(100 * same["bf16"] / total, 2),
            **cpu(),
            "threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "python": platform.python_version(),
            "commit": commit,
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%MZ"),
        }
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
