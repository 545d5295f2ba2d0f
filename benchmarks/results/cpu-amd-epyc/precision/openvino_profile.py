"""Issue 28, the dense fp32 row: where OpenVINO's MiniLM forward spends its time beside fastbert's, per kind of
op, at 32x128 on the real MiniLM. One process, the two forwards alternated: OpenVINO's per-node counters
(``PERF_COUNT``, ``get_profiling_info``) against ``torch.profiler`` over fastbert's forward, plus the whole
forwards timed without either profiler. Needs openvino (a venv beside the system's packages, as for
``bench_precision.py``); results in ``dense_fp32_profile.md``.

    flock -x /tmp/fastbert-quiet.lock /work/ovenv/bin/python openvino_profile.py [rounds] [int8]

``int8``: OpenVINO's int8 row (``nncf.compress_weights`` INT8_ASYM, as the bench's ``openvino-int8``) against
fastbert's (``quantization="int8"``).
"""

import collections
import random
import statistics
import sys
import tempfile
import time
import warnings

import openvino as ov
import torch

import fastbert
from fastbert.benchmark.providers import BuildContext, _onnx_names, export_onnx
from fastbert.benchmark.workloads import load_source_model, make_inputs, parse_shape
from fastbert.hub import embedded_model_path

warnings.simplefilter("ignore")
torch.set_num_threads(2)
ROUNDS = int(sys.argv[1]) if len(sys.argv) > 1 else 8
INT8 = "int8" in sys.argv[2:]

#: OpenVINO node types -> the kind of work (its attention is one fused "Subgraph" per layer: snippets' MHA)
OV_KIND = {"FullyConnected": "GEMMs", "Subgraph": "attention", "MVN": "LayerNorm", "Gelu": "GELU"}
#: torch ops -> the kind of work
TORCH_KIND = {
    "mkldnn::_linear_pointwise": "GEMMs",
    "onednn::qlinear_pointwise": "GEMMs",
    "aten::addmm": "GEMMs",
    "aten::addmm_": "int8 outlier channels",
    "aten::index_select": "int8 outlier channels",
    "aten::_scaled_dot_product_flash_attention_for_cpu": "attention",
    "aten::native_layer_norm": "LayerNorm",
    "aten::gelu_": "GELU",
}


def main():
    source = load_source_model("minilm", "model", "cpu")
    inputs = make_inputs(parse_shape("32x128"), source.config.vocab_size, "cpu")
    ctx = BuildContext(task="model", dtype=torch.float32, device="cpu", source=source, max_batch=32)
    ctx.cache["tmpdir"] = tempfile.mkdtemp(prefix="fastbert-ovprof-")
    core = ov.Core()
    onnx = core.read_model(export_onnx(ctx))
    if INT8:
        import logging

        import nncf

        nncf.set_log_level(logging.ERROR)
        onnx = nncf.compress_weights(onnx, mode=nncf.CompressWeightsMode.INT8_ASYM)
    feed = {n: inputs[n].numpy() for n in _onnx_names(source.config)}

    def ov_request(perf):
        config = {
            "INFERENCE_NUM_THREADS": 2,
            "INFERENCE_PRECISION_HINT": "f32",
            "PERFORMANCE_HINT": "LATENCY",
        }
        return core.compile_model(onnx, "CPU", {**config, "PERF_COUNT": perf}).create_infer_request()

    ov_plain, ov_counted = ov_request(False), ov_request(True)
    model = fastbert.AutoModel.from_pretrained(
        embedded_model_path(), quantization="int8" if INT8 else None
    ).eval()
    kinds = {"openvino": collections.Counter(), "fastbert": collections.Counter()}
    impl = collections.Counter()
    others = collections.Counter()
    forwards = {"openvino": [], "fastbert": []}
    with torch.inference_mode():
        for _ in range(3):
            ov_plain.infer(feed), ov_counted.infer(feed), model(**inputs)
        for _ in range(ROUNDS):
            order = ["openvino", "fastbert"]
            random.shuffle(order)
            for who in order:
                t = time.perf_counter()
                ov_plain.infer(feed) if who == "openvino" else model(**inputs)
                forwards[who].append(time.perf_counter() - t)
            ov_counted.infer(feed)
            for p in ov_counted.get_profiling_info():
                kinds["openvino"][OV_KIND.get(p.node_type, "other")] += p.real_time.total_seconds() / ROUNDS
                impl[(p.node_type, p.exec_type)] += 1 / ROUNDS
            with torch.profiler.profile() as prof:
                model(**inputs)
            for e in prof.key_averages():
                kinds["fastbert"][TORCH_KIND.get(e.key, "other")] += e.self_cpu_time_total / 1e6 / ROUNDS
                if e.key not in TORCH_KIND:
                    others[e.key] += e.self_cpu_time_total / 1e6 / ROUNDS
    print(
        f"whole forwards, median of {ROUNDS} alternated, no profiler: "
        + ", ".join(f"{w} {statistics.median(t) * 1e3:.1f} ms" for w, t in forwards.items())
    )
    print("| kind | OpenVINO ms (%) | fastbert ms (%) |")
    print("| --- | --- | --- |")
    tot = {w: sum(c.values()) for w, c in kinds.items()}
    for kind in (
        "GEMMs",
        "attention",
        "LayerNorm",
        "GELU",
        *(("int8 outlier channels",) if INT8 else ()),
        "other",
    ):
        cells = [f"{kinds[w][kind] * 1e3:.1f} ({100 * kinds[w][kind] / tot[w]:.0f} %)" for w in kinds]
        print(f"| {kind} | {cells[0]} | {cells[1]} |")
    print(f"| total under the profilers | {tot['openvino'] * 1e3:.1f} | {tot['fastbert'] * 1e3:.1f} |")
    print(
        "OpenVINO's GEMM and attention implementations (per forward):",
        {f"{t}/{e}": round(n) for (t, e), n in impl.items() if t in ("FullyConnected", "Subgraph")},
    )
    print("fastbert's other ops (per forward, ms):", {k: round(v * 1e3, 1) for k, v in others.most_common(8)})


if __name__ == "__main__":
    main()
