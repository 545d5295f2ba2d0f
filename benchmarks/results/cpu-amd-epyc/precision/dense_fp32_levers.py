"""Two levers for the dense fp32 row (issue 28 item 1), measured on fastbert's MiniLM forward, each interleaved
with the forward fastbert runs: ``prepack`` (the encoder linears on a prepacked oneDNN weight,
``torch.ops.mkldnn._reorder_linear_weight``, through the weights' load-time-transform hooks) and ``freezing``
(``torch.compile(model)`` with Inductor's ``freezing``). Measurement only: neither is in the package.

    python3 dense_fp32_levers.py prepack 32x128 12
    python3 dense_fp32_levers.py freezing 32x128 10
"""

import sys

mode = sys.argv.pop(1) if len(sys.argv) > 1 else "prepack"
if mode not in ("prepack", "freezing"):
    raise SystemExit("mode: prepack or freezing")


def prepack():
    import statistics
    import sys
    import time

    import torch

    import fastbert
    from fastbert.hub import embedded_model_path

    torch.set_num_threads(2)
    mk = torch.ops.mkldnn
    model = fastbert.BertModel.from_pretrained(embedded_model_path()).eval()
    B, L = (int(a) for a in (sys.argv[1] if len(sys.argv) > 1 else "32x128").split("x"))
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 12
    ids = torch.randint(1000, 20000, (B, L), generator=torch.Generator().manual_seed(0))
    mask = torch.ones(B, L, dtype=torch.long)

    hooks = []  # (setter, clearer)
    packed_bytes = 0
    for layer in model.encoder.layer:
        sa = layer.attention.self
        w, b = sa.fused_qkv()
        pw = mk._reorder_linear_weight(w.detach(), B * L)
        packed_bytes += w.numel() * 4

        def qkv_hook(x, weight, bias, pw=pw):
            return mk._linear_pointwise(x, pw, bias, "none", [], "")

        hooks.append(
            (
                lambda sa=sa, h=qkv_hook: sa.__dict__.__setitem__("qkv_linear", h),
                lambda sa=sa: sa.__dict__.pop("qkv_linear", None),
            )
        )
        for lin in (layer.attention.output.dense, layer.intermediate.dense, layer.output.dense):
            p = lin.weight
            pw = mk._reorder_linear_weight(p.detach(), B * L)
            packed_bytes += p.numel() * 4

            def hook(x, weight, bias, pw=pw):
                return mk._linear_pointwise(x, pw, bias, "none", [], "")

            hooks.append(
                (
                    lambda p=p, h=hook: setattr(p, "fastbert_linear", h),
                    lambda p=p: p.__dict__.pop("fastbert_linear", None),
                )
            )

    def run(packed: bool):
        for on, off in hooks:
            (on if packed else off)()
        with torch.inference_mode():
            t = time.perf_counter()
            out = model(input_ids=ids, attention_mask=mask).last_hidden_state
            return time.perf_counter() - t, out

    _, a = run(False)
    _, b = run(True)
    print(
        f"max abs diff packed vs plain: {(a - b).abs().max().item():.3g}; packed copies {packed_bytes / 2**20:.1f} MiB "
        f"(model parameters {sum(p.numel() for p in model.parameters()) * 4 / 2**20:.1f} MiB)"
    )
    for _ in range(2):
        run(False)
        run(True)
    plain, packed = [], []
    for i in range(rounds):
        order = (False, True) if i % 2 == 0 else (True, False)
        for pk in order:
            (packed if pk else plain).append(run(pk)[0])
    print(
        f"{B}x{L}: plain median {statistics.median(plain) * 1e3:.1f} ms, packed {statistics.median(packed) * 1e3:.1f} ms, "
        f"plain/packed {statistics.median(plain) / statistics.median(packed):.3f}; per-round ratios "
        + " ".join(f"{x / y:.3f}" for x, y in zip(plain, packed))
    )


def freezing():
    import statistics
    import sys
    import time

    import torch
    import torch._inductor.config as ic

    import fastbert
    from fastbert.hub import embedded_model_path

    torch.set_num_threads(2)
    ic.freezing = True
    model = fastbert.BertModel.from_pretrained(embedded_model_path()).eval()
    B, L = (int(a) for a in (sys.argv[1] if len(sys.argv) > 1 else "32x128").split("x"))
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 10
    ids = torch.randint(1000, 20000, (B, L), generator=torch.Generator().manual_seed(0))
    mask = torch.ones(B, L, dtype=torch.long)
    compiled = torch.compile(model, dynamic=False)

    def run(m):
        with torch.no_grad():
            t = time.perf_counter()
            out = m(input_ids=ids, attention_mask=mask).last_hidden_state
            return time.perf_counter() - t, out

    t0 = time.perf_counter()
    _, c = run(compiled)
    print(f"compile {time.perf_counter() - t0:.1f} s")
    _, e = run(model)
    print(f"max abs diff compiled vs eager: {(c - e).abs().max().item():.3g}")
    for _ in range(2):
        run(model)
        run(compiled)
    ea, co = [], []
    for i in range(rounds):
        for m in (model, compiled) if i % 2 == 0 else (compiled, model):
            (ea if m is model else co).append(run(m)[0])
    print(
        f"{B}x{L}: eager median {statistics.median(ea) * 1e3:.1f} ms, compiled+freezing {statistics.median(co) * 1e3:.1f} ms, "
        f"eager/compiled {statistics.median(ea) / statistics.median(co):.3f}; per round "
        + " ".join(f"{x / y:.3f}" for x, y in zip(ea, co))
    )


{"prepack": prepack, "freezing": freezing}[mode]()
