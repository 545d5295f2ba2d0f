"""Seeded cases of ``from_pretrained`` / ``save_pretrained`` / configs / Auto classes, fastbert against
transformers on tiny random models of every family: the same loading info (missing, unexpected and mismatched
keys as sets), the same tensors, dtypes and config fields, the same files written (names, keys, dtypes, index).

Where fastbert keeps transformers 4's documented behaviour that transformers 5 dropped (README), the case
says so and compares with transformers 4's result: ``dtype=None`` loads float32 (transformers 5: the
checkpoint's dtype), ``safe_serialization=False`` writes ``pytorch_model.bin`` files (transformers 5 writes
safetensors whatever the flag), a ``config.json`` without ``model_type`` is BERT's for ``AutoConfig``.
"""

from __future__ import annotations

import contextlib
import glob
import json
import logging
import os
import random
import warnings

import pytest
import torch
from model_helpers import require_transformers

import fastbert
from fastbert import registry

transformers = require_transformers()

FAMILIES = {  # model_type: (config class, class prefix, config extras)
    "bert": ("BertConfig", "Bert", {}),
    "roberta": ("RobertaConfig", "Roberta", {"max_position_embeddings": 66, "pad_token_id": 1}),
    "xlm-roberta": ("XLMRobertaConfig", "XLMRoberta", {"max_position_embeddings": 66, "pad_token_id": 1}),
    "camembert": ("CamembertConfig", "Camembert", {"max_position_embeddings": 66, "pad_token_id": 1}),
    "distilbert": ("DistilBertConfig", "DistilBert", {}),
    "electra": ("ElectraConfig", "Electra", {"embedding_size": 16}),
    "mpnet": ("MPNetConfig", "MPNet", {"max_position_embeddings": 66, "pad_token_id": 1}),
    "modernbert": (
        "ModernBertConfig",
        "ModernBert",
        {
            "pad_token_id": 0,
            "bos_token_id": 1,
            "eos_token_id": 2,
            "cls_token_id": 1,
            "sep_token_id": 2,
            "global_attn_every_n_layers": 2,
            "local_attention": 8,
        },
    ),
}
#: each family's name of its (main) dropout field
DROPOUT = {"distilbert": "dropout", "modernbert": "mlp_dropout"}
CLASSIFIERS = ("sequence-classification", "token-classification")


@pytest.fixture(autouse=True)
def _quiet():
    """transformers' and fastbert's load reports and progress bars are not what these tests read."""
    transformers.utils.logging.disable_progress_bar()
    levels = {n: logging.getLogger(n).level for n in ("transformers", "fastbert")}
    for name in levels:
        logging.getLogger(name).setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


def hf_config(family: str, **extra):
    cname, _, fam_extra = FAMILIES[family]
    if family == "distilbert":
        sizes = dict(vocab_size=99, dim=32, n_layers=2, n_heads=4, hidden_dim=37, max_position_embeddings=64)
    else:
        sizes = dict(
            vocab_size=99,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            intermediate_size=37,
            max_position_embeddings=64,
        )
    return getattr(transformers, cname)(**{**sizes, **fam_extra, **extra})


def class_name(family: str, task: str) -> str:
    return registry.FAMILIES[family].classes[task]


def tasks(family: str) -> list[str]:
    return list(registry.FAMILIES[family].classes)


def hf_model(family: str, task: str, seed: int = 0, **extra):
    torch.manual_seed(seed)
    config = hf_config(family, is_decoder=task == "causal-lm", **extra)
    return getattr(transformers, class_name(family, task))(config).eval()


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """{(family, task): folder} of transformers' models, saved on first use."""
    root = tmp_path_factory.mktemp("loading_fuzz")
    cache: dict = {}

    def get(family: str, task: str):
        if (family, task) not in cache:
            path = root / f"{family}-{task}"
            hf_model(family, task).save_pretrained(str(path))
            cache[family, task] = str(path)
        return cache[family, task]

    return get


def info_sets(info: dict) -> tuple:
    return (
        set(info["missing_keys"]),
        set(info["unexpected_keys"]),
        {(k, tuple(a), tuple(b)) for k, a, b in info["mismatched_keys"]},
        list(info["error_msgs"]),
    )


def load_both(hf_class, fb_class, path, hf_kwargs, fb_kwargs):
    """(transformers' (model, info) or exception, fastbert's (model, info) or exception)."""
    out = []
    for cls, kwargs in ((hf_class, hf_kwargs), (fb_class, fb_kwargs)):
        try:
            out.append(cls.from_pretrained(path, output_loading_info=True, **kwargs))
        except Exception as e:  # compared below: both must fail alike
            out.append(e)
    return out


def assert_same_outcome(hf_out, fb_out, *, fields=()):
    if isinstance(hf_out, Exception) or isinstance(fb_out, Exception):
        assert isinstance(hf_out, Exception) and isinstance(fb_out, Exception), (hf_out, fb_out)
        for kind in (RuntimeError, OSError, ValueError):
            if isinstance(hf_out, kind):
                assert isinstance(fb_out, kind), (hf_out, fb_out)
                break
        return
    (hf, hf_info), (fb, fb_info) = hf_out, fb_out
    assert info_sets(fb_info) == info_sets(hf_info)
    assert type(fb).__name__ == type(hf).__name__
    hf_state, fb_state = hf.state_dict(), fb.state_dict()
    assert set(fb_state) == set(hf_state)
    assert fb.dtype == hf.dtype
    fresh = set(hf_info["missing_keys"]) | {k for k, _, _ in hf_info["mismatched_keys"]}
    for key, value in hf_state.items():
        if key not in fresh and not key.endswith(("position_ids", "token_type_ids")):
            assert torch.equal(fb_state[key], value), key
    for field in fields:
        assert getattr(fb.config, field) == getattr(hf.config, field), field
    assert {int(k): v for k, v in fb.config.id2label.items()} == hf.config.id2label
    assert all(isinstance(k, int) for k in fb.config.id2label)


# --------------------------------------------------------------------------------------------- cross-class info
def _family_task_pairs(n: int, seed: int):
    """``n`` seeded (family, task, task) parameters."""
    rng = random.Random(seed)
    for i in range(n):
        family = rng.choice(sorted(FAMILIES))
        yield pytest.param(family, rng.choice(tasks(family)), rng.choice(tasks(family)), id=f"{i}-{family}")


@pytest.mark.parametrize("family,source,target", list(_family_task_pairs(40, 1234)))
def test_loading_info_across_classes(saved, family, source, target):
    """A checkpoint of one class loaded in another (base into head, head into base, head into head): the same
    missing / unexpected / mismatched keys as transformers, the same tensors; a size mismatch fails in both."""
    path = saved(family, source)
    name = class_name(family, target)
    hf_out, fb_out = load_both(getattr(transformers, name), getattr(fastbert, name), path, {}, {})
    assert_same_outcome(hf_out, fb_out)
    if isinstance(hf_out, Exception):  # a mismatched head: ignore_mismatched_sizes re-initialises it in both
        kw = {"ignore_mismatched_sizes": True}
        hf_out, fb_out = load_both(getattr(transformers, name), getattr(fastbert, name), path, kw, kw)
        assert_same_outcome(hf_out, fb_out)


@pytest.mark.parametrize("family", ["bert", "roberta", "electra", "mpnet"])
def test_untied_decoder_missing_from_base_checkpoint(saved, family, tmp_path):
    """tie_word_embeddings=False: the MLM decoder of a base checkpoint is missing (it is not filled by the
    word embeddings), as transformers reports it."""
    path = saved(family, "base")
    name = class_name(family, "masked-lm")
    kw = {"tie_word_embeddings": False}
    hf_out, fb_out = load_both(getattr(transformers, name), getattr(fastbert, name), path, kw, kw)
    assert set(fb_out[1]["missing_keys"]) == set(hf_out[1]["missing_keys"])


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_tied_decoder_of_a_mismatched_vocabulary_is_not_missing(saved, family):
    """ignore_mismatched_sizes with another vocab_size: the word embeddings (and the head's bias) are
    mismatched and re-initialised; the decoder tied to them shares their new tensors, and transformers does
    not list it as missing (fastbert listed the decoder's weight and bias)."""
    path = saved(family, "masked-lm")
    name = class_name(family, "masked-lm")
    kw = {"vocab_size": 120, "ignore_mismatched_sizes": True}
    hf_out, fb_out = load_both(getattr(transformers, name), getattr(fastbert, name), path, kw, kw)
    assert info_sets(fb_out[1]) == info_sets(hf_out[1])
    model = fb_out[0]
    assert model.get_output_embeddings().weight is model.get_input_embeddings().weight


def test_add_pooling_layer_goes_to_the_model(saved):
    """``BertModel.from_pretrained(path, add_pooling_layer=False)``: an argument of the class, not a config field
    (the pooler's tensors are then unexpected, and the config gets no such field)."""
    path = saved("bert", "base")
    kw = {"add_pooling_layer": False}
    hf_out, fb_out = load_both(transformers.BertModel, fastbert.BertModel, path, kw, kw)
    assert_same_outcome(hf_out, fb_out)
    assert fb_out[0].pooler is None and not hasattr(fb_out[0].config, "add_pooling_layer")


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_base_prefix_is_added_or_stripped_key_by_key(saved, family, tmp_path):
    """The base model's prefix (``bert.``, ``roberta.``, ``model.`` ...) is added or stripped per tensor, as
    transformers 5: a base checkpoint with one stray prefixed tensor still loads into a head model (fastbert
    decided for the whole checkpoint and loaded none of its tensors), and that tensor is unexpected under its
    own name in both directions."""
    from safetensors.torch import load_file, save_file

    prefix = getattr(transformers, class_name(family, "base")).base_model_prefix
    src = saved(family, "base")
    state = load_file(os.path.join(src, "model.safetensors"))
    state[f"{prefix}.stray.weight"] = torch.zeros(3)
    folder = tmp_path / "stray"
    folder.mkdir()
    save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})
    with open(os.path.join(src, "config.json")) as f:
        (folder / "config.json").write_text(f.read())
    for task in ("masked-lm", "base"):
        name = class_name(family, task)
        hf_out, fb_out = load_both(getattr(transformers, name), getattr(fastbert, name), str(folder), {}, {})
        assert_same_outcome(hf_out, fb_out)
        assert f"{prefix}.stray.weight" in fb_out[1]["unexpected_keys"]


def test_a_head_checkpoints_base_tensor_the_model_lacks_keeps_its_name(saved):
    """A head checkpoint in ``BertModel(add_pooling_layer=False)``: its ``bert.pooler.*`` tensors are
    unexpected under their own names, as transformers 5 reports them (fastbert stripped the prefix)."""
    kw = {"add_pooling_layer": False}
    path = saved("bert", "sequence-classification")
    hf_out, fb_out = load_both(transformers.BertModel, fastbert.BertModel, path, kw, kw)
    assert_same_outcome(hf_out, fb_out)
    assert {"bert.pooler.dense.weight", "classifier.weight"} <= fb_out[1]["unexpected_keys"]


# --------------------------------------------------------------------------------------------- keyword arguments
def _write_format(src: str, dst: str, *, bin_files: bool, shards: bool, variant: str | None, subfolder: str):
    """The weights of transformers' folder ``src`` in ``dst``/``subfolder``: safetensors or .bin, one file or
    shards with an index, with ``variant`` in the names (transformers 4's names)."""
    from safetensors.torch import load_file, save_file

    from fastbert.loading import add_variant

    folder = os.path.join(dst, subfolder)
    model = transformers.AutoModel.from_config(transformers.AutoConfig.from_pretrained(src))
    del model  # only the config and the state are copied
    state = load_file(os.path.join(src, "model.safetensors"))
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(src, "config.json"), encoding="utf-8") as f:
        config_text = f.read()
    with open(os.path.join(folder, "config.json"), "w", encoding="utf-8") as f:
        f.write(config_text)
    base = add_variant("pytorch_model.bin" if bin_files else "model.safetensors", variant)
    names = sorted(state)
    groups = [names[: len(names) // 2], names[len(names) // 2 :]] if shards else [names]
    weight_map = {}
    for i, group in enumerate(groups):
        if shards:
            suffix = f"-{i + 1:05d}-of-{len(groups):05d}"
            filename = base.replace(".bin", suffix + ".bin").replace(".safetensors", suffix + ".safetensors")
        else:
            filename = base
        part = {k: state[k] for k in group}
        if bin_files:
            torch.save(part, os.path.join(folder, filename))
        else:
            save_file(part, os.path.join(folder, filename), metadata={"format": "pt"})
        weight_map.update(dict.fromkeys(group, filename))
    if shards:
        index = add_variant(
            "pytorch_model.bin.index.json" if bin_files else "model.safetensors.index.json", variant
        )
        with open(os.path.join(folder, index), "w", encoding="utf-8") as f:
            json.dump({"metadata": {"total_size": 0}, "weight_map": weight_map}, f)


def _kwarg_cases(n: int = 48):
    rng = random.Random(99)
    for seed in range(n):
        family = rng.choice(sorted(FAMILIES))
        case = {
            "family": family,
            "source": rng.choice(["base", *CLASSIFIERS]),
            "target": rng.choice(tasks(family)),
            "bin_files": rng.random() < 0.4,
            "shards": rng.random() < 0.4,
            "variant": rng.choice([None, None, "fp16", "v2"]),
            "subfolder": rng.choice(["", "", "sub"]),
            "dtype": rng.choice([None, "auto", "float16", "bfloat16", torch.float16, torch.float32]),
            "dtype_key": rng.choice(["torch_dtype", "dtype"]),
            "config": rng.choice([None, None, "object", "path"]),
            "override": rng.choice([None, "num_labels", "id2label", "dropout", "output_hidden_states"]),
            "hub": rng.choice([None, "local_files_only", "cache_dir"]),
            "use_safetensors": rng.choice([None, None, True, False]),
        }
        yield pytest.param(case, id=f"{seed}-{family}")


@pytest.mark.parametrize("case", list(_kwarg_cases()))
def test_from_pretrained_keywords(saved, tmp_path, case):
    family = case["family"]
    src = saved(family, case["source"])
    folder = str(tmp_path / "model")
    _write_format(
        src,
        folder,
        bin_files=case["bin_files"],
        shards=case["shards"],
        variant=case["variant"],
        subfolder=case["subfolder"],
    )
    hf_kw: dict = {}
    if case["variant"]:
        hf_kw["variant"] = case["variant"]
    if case["subfolder"]:
        hf_kw["subfolder"] = case["subfolder"]
    if case["use_safetensors"] is not None:
        hf_kw["use_safetensors"] = case["use_safetensors"]
    if case["hub"] == "local_files_only":
        hf_kw["local_files_only"] = True
    elif case["hub"] == "cache_dir":
        hf_kw["cache_dir"] = str(tmp_path / "cache")
    fields = []
    override = case["override"]
    if override == "num_labels":
        hf_kw.update(num_labels=5, ignore_mismatched_sizes=True)
        fields.append("num_labels")
    elif override == "id2label":
        hf_kw.update(id2label={0: "neg", 1: "neutral", 2: "pos"}, ignore_mismatched_sizes=True)
        fields += ["num_labels", "label2id"]
    elif override == "dropout":
        hf_kw[DROPOUT.get(family, "hidden_dropout_prob")] = 0.25
        fields.append(DROPOUT.get(family, "hidden_dropout_prob"))
    elif override == "output_hidden_states":
        hf_kw["output_hidden_states"] = True
        fields.append("output_hidden_states")
    if case["config"] is not None and override is not None:
        # with config=, transformers passes the other keywords to the model's __init__, which refuses them
        # (TypeError); fastbert applies them to the config: a known difference (see the report), not compared
        override, fields = None, []
        for key in ("num_labels", "id2label", "ignore_mismatched_sizes", "output_hidden_states", "dropout",
                    "mlp_dropout", "hidden_dropout_prob"):  # fmt: skip
            hf_kw.pop(key, None)
    fb_kw = dict(hf_kw)
    dtype = case["dtype"]
    if dtype is not None:
        hf_kw[case["dtype_key"]] = dtype
        fb_kw[case["dtype_key"]] = dtype
    else:  # transformers 4's default (float32): transformers 5 loads the checkpoint's dtype instead
        hf_kw["dtype"] = torch.float32
    name = class_name(family, case["target"])
    hf_class, fb_class = getattr(transformers, name), getattr(fastbert, name)
    if case["config"] is not None:
        config_dir = str(tmp_path / "config")
        hf_config(family, num_labels=2, is_decoder=case["target"] == "causal-lm").save_pretrained(config_dir)
        if case["config"] == "path":
            hf_kw["config"] = fb_kw["config"] = config_dir
        else:
            hf_kw["config"] = transformers.AutoConfig.from_pretrained(config_dir)
            fb_kw["config"] = fastbert.AutoConfig.from_pretrained(config_dir)
    elif case["target"] == "causal-lm":  # a decoder, as transformers asks of its causal LMs
        hf_kw["is_decoder"] = fb_kw["is_decoder"] = True
    hf_out, fb_out = load_both(hf_class, fb_class, folder, hf_kw, fb_kw)
    assert_same_outcome(hf_out, fb_out, fields=fields)
    if not isinstance(fb_out, Exception):
        # the dtype is recorded in the config, as transformers records it
        assert fb_out[0].config.dtype == hf_out[0].config.dtype


def test_variant_without_its_files_fails(saved, tmp_path):
    """``variant`` asks for ``model.<variant>.safetensors``: a folder without it fails in both (no fallback to
    the plain files)."""
    path = saved("bert", "base")
    hf_out, fb_out = load_both(
        transformers.BertModel, fastbert.BertModel, path, {"variant": "fp16"}, {"variant": "fp16"}
    )
    assert isinstance(hf_out, OSError) and isinstance(fb_out, OSError)
    assert "model.fp16.safetensors" in str(fb_out)


def test_dtype_auto_and_recorded(saved, tmp_path):
    """A float16 checkpoint: ``dtype="auto"`` loads float16 in both (config.json's dtype), ``dtype=None`` float32
    (transformers 4's default; transformers 5 would give float16), and save_pretrained records the dtype."""
    model = hf_model("bert", "sequence-classification").to(torch.float16)
    model.save_pretrained(str(tmp_path / "hf16"))
    hf = transformers.BertForSequenceClassification.from_pretrained(str(tmp_path / "hf16"), dtype="auto")
    fb = fastbert.BertForSequenceClassification.from_pretrained(str(tmp_path / "hf16"), torch_dtype="auto")
    assert fb.dtype == hf.dtype == torch.float16
    assert (
        fastbert.BertForSequenceClassification.from_pretrained(str(tmp_path / "hf16")).dtype == torch.float32
    )
    fb.save_pretrained(str(tmp_path / "fb16"))
    written = json.loads((tmp_path / "fb16" / "config.json").read_text())
    theirs = json.loads((tmp_path / "hf16" / "config.json").read_text())
    assert written["dtype"] == theirs["dtype"] == "float16"


# --------------------------------------------------------------------------------------------- saving
def _files(folder: str) -> dict[str, dict[str, str]]:
    """{file: {tensor: dtype}} of the weight files, {file: json} of the indexes, under ``folder``."""
    from safetensors import safe_open

    out = {}
    for path in sorted(glob.glob(os.path.join(folder, "*"))):
        name = os.path.basename(path)
        if name.endswith(".safetensors"):
            with safe_open(path, "pt") as f:
                out[name] = {k: str(f.get_slice(k).get_dtype()) for k in f.keys()}
        elif name.endswith(".bin"):
            state = torch.load(path, weights_only=True)
            out[name] = {
                k: str(v.dtype).removeprefix("torch.").replace("float", "F").replace("bF16", "BF16")
                for k, v in state.items()
            }
        elif name.endswith(".json") and ".index" in name:
            with open(path, encoding="utf-8") as f:
                out[name] = json.load(f)["weight_map"]
        else:
            out[name] = {}
    return out


def _as_bin(name: str) -> str:
    """transformers 4's name of a .bin file for transformers' safetensors file ``name``."""
    return "pytorch_" + name.replace(".safetensors", ".bin")


_DTYPE_NAMES = {"F32": "F32", "F16": "F16", "BF16": "BF16", "F64": "F64"}


def _save_cases(n: int = 24):
    rng = random.Random(7)
    for seed in range(n):
        family = rng.choice(sorted(FAMILIES))
        case = {
            "family": family,
            "task": rng.choice(tasks(family)),
            "max_shard_size": rng.choice([None, None, "20KB", 30_000, "60KB"]),
            "variant": rng.choice([None, None, "fp16", "v2"]),
            "safe_serialization": rng.random() < 0.7,
            "dtype": rng.choice([torch.float32, torch.float32, torch.float16]),
            "state_dict": rng.random() < 0.25,
            "resave": rng.random() < 0.3,
        }
        yield pytest.param(case, id=f"{seed}-{family}")


@pytest.mark.parametrize("case", list(_save_cases()))
def test_save_pretrained_writes_what_transformers_writes(tmp_path, case):
    family, task = case["family"], case["task"]
    hf = hf_model(family, task, seed=3, tie_word_embeddings=family != "electra").to(case["dtype"])
    fb = fastbert.from_transformers(hf)
    kw = {}
    if case["max_shard_size"] is not None:
        kw["max_shard_size"] = case["max_shard_size"]
    if case["variant"]:
        kw["variant"] = case["variant"]
    if case["state_dict"]:
        kw["state_dict"] = {k: v.clone() for k, v in hf.state_dict().items()}
    hf_dir, fb_dir = str(tmp_path / "hf"), str(tmp_path / "fb")
    if case["resave"]:  # an earlier save of more shards in the folder: its extra shards are removed
        hf.save_pretrained(hf_dir, max_shard_size="10KB", variant=case["variant"])
        fb.save_pretrained(fb_dir, max_shard_size="10KB", variant=case["variant"])
    hf.save_pretrained(hf_dir, **kw)
    if case["state_dict"]:  # transformers empties the dict it is given
        kw["state_dict"] = {k: v.clone() for k, v in hf.state_dict().items()}
    fb.save_pretrained(fb_dir, safe_serialization=case["safe_serialization"], **kw)
    theirs, ours = _files(hf_dir), _files(fb_dir)
    if case["resave"] and not case["safe_serialization"]:
        # the earlier safetensors save stays beside the .bin files (transformers 4 likewise): compare the .bin
        ours = {
            k: v for k, v in ours.items() if not k.endswith("safetensors") and "safetensors.index" not in k
        }
    if not case["safe_serialization"]:  # transformers 4's .bin files, under their names
        theirs = {
            (_as_bin(k) if k.startswith("model") else k): (
                {t: _as_bin(f) for t, f in v.items()} if ".index" in k else v
            )
            for k, v in theirs.items()
        }
    assert sorted(ours) == sorted(theirs)

    # the same tensors (and dtypes) in all; which shard holds which tensor follows the state dict's order,
    # which differs between the two for some heads: each index maps every tensor to the file that holds it
    def tensors(files):
        return {
            t: dtype
            for name, content in files.items()
            if not name.endswith(".json")
            for t, dtype in content.items()
        }

    ours_tensors, theirs_tensors = tensors(ours), tensors(theirs)
    assert set(ours_tensors) == set(theirs_tensors)
    if case["safe_serialization"]:
        assert ours_tensors == theirs_tensors
    stale_index = case["resave"] and case["max_shard_size"] is None  # left by the earlier save, in both
    for name, content in ours.items():
        if ".index" in name and not stale_index:
            assert set(content) == set(ours_tensors)
            for tensor, filename in content.items():
                assert tensor in ours[filename], (name, tensor)
    # both load what fastbert wrote, to the same tensors
    load_kw = {"variant": case["variant"]} if case["variant"] else {}
    name = class_name(family, task)
    back_hf = getattr(transformers, name).from_pretrained(fb_dir, dtype=case["dtype"], **load_kw)
    back_fb = getattr(fastbert, name).from_pretrained(fb_dir, dtype="auto", **load_kw)
    assert back_fb.dtype == back_hf.dtype == case["dtype"]
    reference = hf.state_dict()
    for key, value in back_hf.state_dict().items():
        assert torch.equal(value, reference[key]), key
        assert torch.equal(back_fb.state_dict()[key], value), key


@pytest.mark.parametrize("task", ["base", "causal-lm"])  # a causal LM also writes generation_config.json
def test_save_pretrained_not_main_process(tmp_path, task):
    """``is_main_process=False``: the folder is made, nothing is written (as transformers)."""
    hf = hf_model("bert", task)
    fb = fastbert.from_transformers(hf)
    hf.save_pretrained(str(tmp_path / "hf"), is_main_process=False)
    fb.save_pretrained(str(tmp_path / "fb"), is_main_process=False)
    assert os.listdir(tmp_path / "fb") == os.listdir(tmp_path / "hf") == []


def test_save_pretrained_state_dict_argument(tmp_path):
    """``state_dict=`` is what is written (a changed tensor, as given), under the model's config."""
    hf = hf_model("roberta", "sequence-classification")
    fb = fastbert.from_transformers(hf)
    state = {k: v.clone() for k, v in hf.state_dict().items()}
    state["classifier.out_proj.bias"] += 1.0
    hf.save_pretrained(
        str(tmp_path / "hf"), state_dict=dict(state)
    )  # transformers empties the dict it is given
    fb.save_pretrained(str(tmp_path / "fb"), state_dict=state)
    assert "classifier.out_proj.bias" in state  # fastbert keeps the caller's dict
    assert _files(str(tmp_path / "fb")) == _files(str(tmp_path / "hf"))
    back = transformers.RobertaForSequenceClassification.from_pretrained(str(tmp_path / "fb"))
    assert torch.equal(back.classifier.out_proj.bias, state["classifier.out_proj.bias"])


# --------------------------------------------------------------------------------------------- configs
@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_config_api(tmp_path, family):
    cname = FAMILIES[family][0]
    H, F = getattr(transformers, cname), getattr(fastbert, cname)
    hf_cfg = hf_config(family, num_labels=3)
    hf_cfg.save_pretrained(str(tmp_path))
    ours, theirs = F.from_pretrained(str(tmp_path)), H.from_pretrained(str(tmp_path))
    # labels: int keys after loading, label2id the inverse
    assert ours.id2label == theirs.id2label and all(isinstance(k, int) for k in ours.id2label)
    assert ours.label2id == theirs.label2id and ours.num_labels == theirs.num_labels == 3
    # to_dict: the same values for transformers' keys (fastbert adds BERT's fields its engine reads)
    mine, theirs_dict = ours.to_dict(), theirs.to_dict()
    skip = {"transformers_version", "_name_or_path", "dtype"}
    for key, value in theirs_dict.items():
        if key not in skip:
            assert mine[key] == value, key
    # to_diff_dict: every key transformers writes, with its value, and a faithful round trip in both
    diff, theirs_diff = ours.to_diff_dict(), theirs.to_diff_dict()
    for key, value in theirs_diff.items():
        if key not in skip:
            assert key in diff and diff[key] == value, key
    assert F.from_dict(diff) == ours
    assert json.loads(ours.to_json_string()) == json.loads(json.dumps(diff))
    assert json.loads(ours.to_json_string(use_diff=False))["model_type"] == family
    rebuilt = H.from_dict(json.loads(ours.to_json_string()))
    for key, value in theirs_dict.items():
        if key not in skip:
            assert rebuilt.to_dict()[key] == value, key
    # return_dict / use_return_dict
    assert ours.use_return_dict is theirs.use_return_dict is True
    no_dict = F.from_pretrained(str(tmp_path), return_dict=False)
    assert (
        no_dict.use_return_dict
        is H.from_pretrained(str(tmp_path), return_dict=False).use_return_dict
        is False
    )
    # kwargs: config fields override, the others are returned unused (and not set)
    over = {"num_labels": 4, "output_hidden_states": True, "not_a_field": 1}
    (c1, u1), (c2, u2) = (
        F.from_pretrained(str(tmp_path), return_unused_kwargs=True, **over),
        H.from_pretrained(str(tmp_path), return_unused_kwargs=True, **over),
    )
    assert u1 == u2 == {"not_a_field": 1}
    assert c1.num_labels == c2.num_labels == 4 and c1.output_hidden_states is c2.output_hidden_states is True
    assert not hasattr(F.from_pretrained(str(tmp_path), not_a_field=1), "not_a_field")
    # from_dict: unknown keys of the dict are kept; unknown kwargs returned
    data = {**theirs.to_dict(), "my_key": [1, 2]}
    assert F.from_dict(data).my_key == H.from_dict(data).my_key == [1, 2]
    assert F.from_dict(data, return_unused_kwargs=True, zzz=1)[1] == {"zzz": 1}
    # update / update_from_string
    field = DROPOUT.get(family, "hidden_dropout_prob")
    for cfg in (ours, theirs):
        cfg.update({field: 0.25, "my_key": 3})
        cfg.update_from_string(f"initializer_range=0.5,tie_word_embeddings=false,{field}=0.125")
    for key in (field, "my_key", "initializer_range", "tie_word_embeddings"):
        assert getattr(ours, key) == getattr(theirs, key), key
    with pytest.raises(ValueError, match="isn't in the original config"):
        ours.update_from_string("no_such_field=1")
    # attribute_map names answer as the fields they stand for
    assert getattr(F, "attribute_map", {}) == dict(H.attribute_map)
    for alias, target in H.attribute_map.items():
        assert getattr(ours, alias) == getattr(ours, target) == getattr(theirs, alias)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_config_labels_and_model_type(tmp_path, family):
    cname = FAMILIES[family][0]
    H, F = getattr(transformers, cname), getattr(fastbert, cname)
    # num_labels disagreeing with id2label: num_labels wins in both (labels regenerated)
    assert (
        F(num_labels=3, id2label={0: "a", 1: "b"}).id2label
        == H(num_labels=3, id2label={0: "a", 1: "b"}).id2label
    )
    # id2label with string keys (as JSON has them): int keys
    assert (
        F(id2label={"0": "a", "1": "b"}).id2label
        == H(id2label={"0": "a", "1": "b"}).id2label
        == {0: "a", 1: "b"}
    )
    # a config.json without model_type: the family's class reads it (AutoConfig: BERT's, README)
    data = hf_config(family).to_dict()
    data.pop("model_type")
    (tmp_path / "config.json").write_text(json.dumps(data))
    ours, theirs = F.from_pretrained(str(tmp_path)), H.from_pretrained(str(tmp_path))
    assert ours.hidden_size == theirs.hidden_size == 32 and ours.vocab_size == theirs.vocab_size
    assert isinstance(fastbert.AutoConfig.from_pretrained(str(tmp_path)), fastbert.BertConfig)


# --------------------------------------------------------------------------------------------- Auto classes
AUTO = {
    "base": "AutoModel",
    "pretraining": "AutoModelForPreTraining",
    "causal-lm": "AutoModelForCausalLM",
    "masked-lm": "AutoModelForMaskedLM",
    "next-sentence-prediction": "AutoModelForNextSentencePrediction",
    "sequence-classification": "AutoModelForSequenceClassification",
    "multiple-choice": "AutoModelForMultipleChoice",
    "token-classification": "AutoModelForTokenClassification",
    "question-answering": "AutoModelForQuestionAnswering",
}


@pytest.mark.parametrize("family,source,task", list(_family_task_pairs(16, 5)))
def test_auto_classes_pick_the_class(saved, tmp_path, family, source, task):
    path = saved(family, source)
    auto = AUTO[task]
    kw = {"is_decoder": True} if task == "causal-lm" else {}
    kw["ignore_mismatched_sizes"] = True
    hf_out, fb_out = load_both(getattr(transformers, auto), getattr(fastbert, auto), path, kw, kw)
    assert_same_outcome(hf_out, fb_out)
    assert (
        type(fastbert.AutoConfig.from_pretrained(path)).__name__
        == type(transformers.AutoConfig.from_pretrained(path)).__name__
    )


def test_trust_remote_code_with_an_auto_map_is_refused(saved, tmp_path):
    """A config.json whose auto_map names the checkpoint's own class for AutoModel: with trust_remote_code=True
    transformers builds that class (other code, other outputs), which fastbert cannot run: refused (fastbert
    built its BertModel in its place, silently); without it, both build the built-in class. The pipeline
    passes trust_remote_code on to the Auto class."""
    import shutil

    folder = tmp_path / "custom"
    shutil.copytree(saved("bert", "base"), folder)
    (folder / "modeling_custom.py").write_text(
        "from transformers import BertModel\n\n\n"
        "class CustomBertModel(BertModel):\n"
        "    def forward(self, *args, **kwargs):\n"
        "        out = super().forward(*args, **kwargs)\n"
        "        out.last_hidden_state = out.last_hidden_state * 2\n"
        "        return out\n"
    )
    config = json.loads((folder / "config.json").read_text())
    config.update(
        architectures=["CustomBertModel"], auto_map={"AutoModel": "modeling_custom.CustomBertModel"}
    )
    (folder / "config.json").write_text(json.dumps(config))
    path = str(folder)
    assert (
        type(transformers.AutoModel.from_pretrained(path, trust_remote_code=True)).__name__
        == "CustomBertModel"
    )
    with pytest.raises(ValueError, match="modeling_custom.CustomBertModel.*trust_remote_code"):
        fastbert.AutoModel.from_pretrained(path, trust_remote_code=True)
    with pytest.raises(ValueError, match="modeling_custom.CustomBertModel"):
        fastbert.pipeline("feature-extraction", model=path, tokenizer=fastbert.hub.embedded_model_path(),
                          trust_remote_code=True)  # fmt: skip
    for flag in (None, False):
        assert (
            type(transformers.AutoModel.from_pretrained(path, trust_remote_code=flag)).__name__ == "BertModel"
        )
        assert type(fastbert.AutoModel.from_pretrained(path, trust_remote_code=flag)).__name__ == "BertModel"
    # an auto_map for another Auto class: this one builds the built-in class, as transformers
    assert type(fastbert.AutoModelForMaskedLM.from_pretrained(path, trust_remote_code=True)).__name__ == (
        "BertForMaskedLM"
    )


@pytest.mark.parametrize("family", ["bert", "modernbert"])
def test_from_config_builds_in_the_dtype_asked_or_the_configs(tmp_path, family):
    """transformers' ``from_config`` builds the model in ``dtype`` / ``torch_dtype``, else in the config's own
    dtype (a config read from a float16 checkpoint); fastbert passed both keywords to the class
    (TypeError) and built float32 from a float16 config."""
    config = hf_config(family)
    config.dtype = torch.float16
    config.save_pretrained(tmp_path)
    for lib in (transformers, fastbert):
        auto = lib.AutoModelForMaskedLM
        built = auto.from_config(lib.AutoConfig.from_pretrained(tmp_path))
        assert {p.dtype for p in built.parameters()} == {torch.float16}, lib
        assert built.get_output_embeddings().weight is built.get_input_embeddings().weight, lib
        for key in ("dtype", "torch_dtype"):
            built = auto.from_config(lib.AutoConfig.from_pretrained(tmp_path), **{key: torch.bfloat16})
            assert {p.dtype for p in built.parameters()} == {torch.bfloat16}, (lib, key)
        sizes = {k: v for k, v in hf_config(family).to_dict().items() if k not in ("model_type", "dtype")}
        assert auto.from_config(lib.AutoConfig.for_model(family, **sizes)).dtype == torch.float32, lib


def test_trust_remote_code_with_an_auto_map_config_or_from_config_is_refused(saved, tmp_path):
    """transformers' AutoConfig (and so every AutoModel* reading config.json) with trust_remote_code=True runs
    the config class auto_map names, and ``from_config(config, trust_remote_code=True)`` the model class:
    refused as from_pretrained refuses its own (fastbert returned its BertConfig / built BertForMaskedLM
    silently, and from_config passed trust_remote_code to the class: TypeError)."""
    import shutil

    folder = tmp_path / "custom"
    shutil.copytree(saved("bert", "base"), folder)
    (folder / "configuration_custom.py").write_text(
        "from transformers import BertConfig\n\n\nclass CustomBertConfig(BertConfig):\n    pass\n"
    )
    config = json.loads((folder / "config.json").read_text())
    config["auto_map"] = {
        "AutoConfig": "configuration_custom.CustomBertConfig",
        "AutoModel": "modeling_custom.CustomBertModel",
    }
    (folder / "config.json").write_text(json.dumps(config))
    path = str(folder)
    theirs = transformers.AutoConfig.from_pretrained(path, trust_remote_code=True)
    assert type(theirs).__name__ == "CustomBertConfig"
    with pytest.raises(ValueError, match="configuration_custom.CustomBertConfig.*trust_remote_code"):
        fastbert.AutoConfig.from_pretrained(path, trust_remote_code=True)
    with pytest.raises(ValueError, match="configuration_custom.CustomBertConfig.*trust_remote_code"):
        fastbert.AutoModelForMaskedLM.from_pretrained(path, trust_remote_code=True)
    ours = fastbert.AutoConfig.from_pretrained(path, trust_remote_code=False)
    assert type(ours).__name__ == type(transformers.AutoConfig.from_pretrained(path)).__name__ == "BertConfig"
    with pytest.raises(ValueError, match="modeling_custom.CustomBertModel.*trust_remote_code"):
        fastbert.AutoModel.from_config(ours, trust_remote_code=True)
    for flag in (None, False):
        assert type(fastbert.AutoModel.from_config(ours, trust_remote_code=flag)) is fastbert.BertModel
    # an auto_map for another Auto class and a config given: the built-in class, as transformers
    built = fastbert.AutoModelForMaskedLM.from_config(ours, trust_remote_code=True, code_revision="v1")
    assert type(built) is fastbert.BertForMaskedLM


def test_auto_classes_given_a_transformers_config_or_not_a_config(saved):
    """``from_pretrained(path, config=<a transformers config>)`` builds the class of its model type, as the model
    classes take one (fastbert read the config's repr as a path: OSError), with its attn_implementation; ``from_config``
    of something that is not a config is refused in transformers' words (a dict was an AttributeError)."""
    path = saved("roberta", "masked-lm")
    theirs = transformers.AutoConfig.from_pretrained(path)
    built = fastbert.AutoModelForMaskedLM.from_pretrained(path, config=theirs)
    assert type(built) is fastbert.RobertaForMaskedLM
    for lib in (transformers, fastbert):
        with pytest.raises(ValueError, match="Unrecognized configuration class <class 'dict'>.*: AutoModel"):
            lib.AutoModel.from_config(theirs.to_dict())
    # its backend too, as the model classes keep it (the Auto class built the default one)
    eager = transformers.AutoConfig.from_pretrained(path, attn_implementation="eager")
    for cls in (fastbert.AutoModelForMaskedLM, fastbert.RobertaForMaskedLM):
        assert cls.from_pretrained(path, config=eager).config._attn_implementation == "eager", cls
        with pytest.raises(ValueError, match="'flash_attention_2' is a transformers backend"):
            cls.from_pretrained(
                path, config=type(eager).from_pretrained(path, attn_implementation="flash_attention_2")
            )


@pytest.mark.parametrize(
    "family,auto",
    [
        ("roberta", "AutoModelForNextSentencePrediction"),
        ("distilbert", "AutoModelForCausalLM"),
        ("modernbert", "AutoModelForPreTraining"),
    ],
)
def test_auto_class_a_family_lacks_is_refused_in_transformers_words(family, auto):
    """A family without the Auto class's head (transformers has none either): transformers' ValueError, its first
    line word for word with fastbert's config class, then the config classes that have one (fastbert's said
    only that the model type had no such class "in fastbert", naming no Auto class)."""
    theirs = hf_config(family)
    ours = registry.config_from_dict(theirs.to_dict())
    first_lines = []
    for lib, config in ((transformers, theirs), (fastbert, ours)):
        with pytest.raises(ValueError) as raised:
            getattr(lib, auto).from_config(config)
        first_lines.append(str(raised.value).splitlines()[0].replace(type(config).__module__, ""))
    assert first_lines[0] == first_lines[1]
    assert str(raised.value).splitlines()[1].startswith("Model type should be one of ")


def test_unsupported_model_type_points_at_transformers(tmp_path):
    """A model type fastbert lacks: the error lists fastbert's and says transformers' Auto classes load the
    others (it listed fastbert's only)."""
    transformers.AlbertConfig(vocab_size=99, hidden_size=32, num_attention_heads=2).save_pretrained(tmp_path)
    assert type(transformers.AutoConfig.from_pretrained(tmp_path)).__name__ == "AlbertConfig"
    for load in (fastbert.AutoConfig.from_pretrained, fastbert.AutoModel.from_pretrained):
        with pytest.raises(
            ValueError, match=r"'albert' is not supported.*transformers' own Auto classes load"
        ):
            load(tmp_path)


def test_autoconfig_keeps_where_it_was_read_from(saved):
    """transformers' AutoConfig (not the config classes) sets ``name_or_path`` to the path it was given, which a
    model built on it keeps: a pipeline loads that model's tokenizer from there (fastbert's was "": the pipeline
    refused the model, having no name_or_path)."""
    import pathlib

    path = saved("bert", "base")
    for given in (path, pathlib.Path(path)):
        for lib in (transformers, fastbert):
            assert lib.AutoConfig.from_pretrained(given).name_or_path == path, lib
            assert lib.BertConfig.from_pretrained(given).name_or_path == "", lib
    folder = fastbert.hub.embedded_model_path()  # a folder with its tokenizer
    model = fastbert.AutoModel.from_config(fastbert.AutoConfig.from_pretrained(folder))
    assert model.config.name_or_path == folder
    assert len(fastbert.pipeline("feature-extraction", model=model)("hello world")[0]) == 4


def test_autoconfig_is_not_built_directly():
    """``AutoConfig()`` is refused as transformers refuses it (fastbert gave an empty AutoConfig object)."""
    for lib in (transformers, fastbert):
        with pytest.raises(OSError, match="AutoConfig.from_pretrained"):
            lib.AutoConfig()


class MyBertConfig(fastbert.BertConfig):
    """A user's own config and classes, as transformers documents registering them."""

    model_type = "my-bert"


class MyBertModel(fastbert.BertModel):
    config_class = MyBertConfig


class MyBertForSequenceClassification(fastbert.BertForSequenceClassification):
    config_class = MyBertConfig


@contextlib.contextmanager
def registrations_undone():
    """The Auto classes' registrations are process-wide: those made inside are undone on leaving."""
    tables = (
        registry.REGISTERED_CONFIGS,
        registry.REGISTERED_MODELS,
        registry.REGISTERED_TOKENIZERS,
        registry.REGISTERED_TOKENIZER_NAMES,
    )
    saved = [dict(t) for t in tables]
    try:
        yield
    finally:
        for table, before in zip(tables, saved):
            table.clear()
            table.update(before)


def test_registered_classes_round_trip(tmp_path):
    """``AutoConfig.register`` / ``AutoModel*.register`` as transformers documents them (fastbert had neither): a
    folder of the user's model_type loads in the user's config and model classes, heads included; an Auto class
    with no class registered refuses the config in transformers' words."""
    sizes = dict(
        vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37
    )
    ids = torch.tensor([[2, 5, 7, 11, 3]])
    with registrations_undone():
        fastbert.AutoConfig.register("my-bert", MyBertConfig)
        fastbert.AutoModel.register(MyBertConfig, MyBertModel)
        fastbert.AutoModelForSequenceClassification.register(MyBertConfig, MyBertForSequenceClassification)
        built = fastbert.AutoModel.from_config(MyBertConfig(**sizes)).eval()
        assert type(built) is MyBertModel
        built.save_pretrained(tmp_path)
        assert json.loads((tmp_path / "config.json").read_text())["model_type"] == "my-bert"
        assert type(fastbert.AutoConfig.from_pretrained(tmp_path)) is MyBertConfig
        assert type(fastbert.AutoConfig.for_model("my-bert", **sizes)) is MyBertConfig
        loaded = fastbert.AutoModel.from_pretrained(tmp_path).eval()
        assert type(loaded) is MyBertModel
        torch.testing.assert_close(
            loaded(ids).last_hidden_state, built(ids).last_hidden_state, rtol=0, atol=0
        )
        head = fastbert.AutoModelForSequenceClassification.from_pretrained(tmp_path, num_labels=3)
        assert type(head) is MyBertForSequenceClassification and head(ids).logits.shape == (1, 3)
        with pytest.raises(
            ValueError, match=r"Unrecognized configuration class .*MyBertConfig.*AutoModelForMaskedLM"
        ):
            fastbert.AutoModelForMaskedLM.from_pretrained(tmp_path)
    # undone: the model_type is unknown again, and BERT's configs build BERT's classes
    with pytest.raises(ValueError, match="'my-bert' is not supported"):
        fastbert.AutoConfig.from_pretrained(tmp_path)
    assert type(fastbert.AutoModel.from_config(fastbert.BertConfig(**sizes))) is fastbert.BertModel


class MyBertTokenizer(fastbert.BertTokenizer):
    pass


def test_registered_tokenizer_loads_by_model_type_and_by_name(tmp_path):
    """``AutoTokenizer.register`` as transformers documents it (fastbert had none): a folder whose config.json
    has the registered config's model_type, or whose tokenizer_config.json names the registered class, loads in
    the user's class; transformers 4's slow / fast arguments are taken; refusals in transformers' words."""
    folder = fastbert.hub.embedded_model_path()
    with registrations_undone():
        fastbert.AutoConfig.register("my-bert", MyBertConfig)
        fastbert.AutoTokenizer.register(MyBertConfig, MyBertTokenizer)
        by_type = tmp_path / "by_type"
        fastbert.AutoTokenizer.from_pretrained(folder).save_pretrained(by_type)
        tok_config = json.loads((by_type / "tokenizer_config.json").read_text())
        del tok_config["tokenizer_class"]  # only config.json's model_type says which
        (by_type / "tokenizer_config.json").write_text(json.dumps(tok_config))
        MyBertConfig(vocab_size=99).save_pretrained(by_type)
        tok = fastbert.AutoTokenizer.from_pretrained(by_type)
        assert type(tok) is MyBertTokenizer
        assert (
            tok("hello world")["input_ids"]
            == fastbert.AutoTokenizer.from_pretrained(folder)("hello world")["input_ids"]
        )
        by_name = tmp_path / "by_name"
        MyBertTokenizer.from_pretrained(folder).save_pretrained(by_name)
        assert json.loads((by_name / "tokenizer_config.json").read_text())["tokenizer_class"] == (
            "MyBertTokenizer"
        )
        assert type(fastbert.AutoTokenizer.from_pretrained(by_name)) is MyBertTokenizer
        # transformers 4's keywords: one class in fastbert, the fast one where both are given
        fastbert.AutoTokenizer.register(MyBertConfig, slow_tokenizer_class=MyBertTokenizer)
        assert type(fastbert.AutoTokenizer.from_pretrained(by_type)) is MyBertTokenizer
        for lib in (transformers, fastbert):
            with pytest.raises(ValueError, match="^You need to pass a `tokenizer_class`$"):
                lib.AutoTokenizer.register(MyBertConfig)
        with pytest.raises(
            ValueError, match=r"^'<class '.*\.BertConfig'>' is already used by a Transformers model\.$"
        ):
            transformers.AutoTokenizer.register(transformers.BertConfig, transformers.BertTokenizer)
        with pytest.raises(
            ValueError, match=r"^'<class '.*\.BertConfig'>' is already used by a Transformers model\.$"
        ):
            fastbert.AutoTokenizer.register(fastbert.BertConfig, MyBertTokenizer)
        with pytest.raises(ValueError, match="loads fastbert tokenizers"):
            fastbert.AutoTokenizer.register(MyBertConfig, transformers.BertTokenizer)
        # exist_ok=True replaces a family's tokenizer for its model_type (config.json says "bert")
        fastbert.AutoTokenizer.register(fastbert.BertConfig, MyBertTokenizer, exist_ok=True)
        plain = tmp_path / "plain"
        fastbert.AutoTokenizer.from_pretrained(folder).save_pretrained(plain)
        (plain / "tokenizer_config.json").write_text(json.dumps(tok_config))
        fastbert.BertConfig(vocab_size=99).save_pretrained(plain)
        assert type(fastbert.AutoTokenizer.from_pretrained(plain)) is MyBertTokenizer
    # undone: a folder naming the class falls back to its files (a WordPiece vocabulary: BERT's)
    assert type(fastbert.AutoTokenizer.from_pretrained(by_name)) is fastbert.BertTokenizer
    assert type(fastbert.AutoTokenizer.from_pretrained(plain)) is fastbert.BertTokenizer


def test_register_refusals_in_transformers_words_and_exist_ok(saved):
    """transformers' refusals, word for word: a config whose model_type is not the name, a name of its own
    (unless exist_ok=True), a model whose config_class is another, a config class of its own that has a model
    for this Auto class (unless exist_ok=True); classes that are not fastbert's are refused too."""

    class OtherConfig(transformers.BertConfig):
        model_type = "other"

    class TheirModel(transformers.BertModel):
        config_class = OtherConfig

    class OurOtherConfig(fastbert.BertConfig):
        model_type = "other"

    class OurModel(fastbert.BertModel):
        config_class = OurOtherConfig

    cases = (
        (transformers, OtherConfig, TheirModel, transformers.BertConfig),
        (fastbert, OurOtherConfig, OurModel, fastbert.BertConfig),
    )  # fmt: skip
    with registrations_undone():
        for lib, other, model, bert in cases:
            with pytest.raises(
                ValueError, match=r"config has other and you passed my-bert\. Fix one of those"
            ):
                lib.AutoConfig.register("my-bert", other)
            with pytest.raises(
                ValueError, match="^'bert' is already used by a Transformers config, pick another"
            ):
                lib.AutoConfig.register("bert", bert)
            with pytest.raises(
                ValueError, match=r"model has <class .*OtherConfig'> and you passed <class .*MyBert"
            ):
                lib.AutoModel.register(MyBertConfig, model)
            with pytest.raises(
                ValueError, match=r"^'<class '.*\.BertConfig'>' is already used by a Transformers model"
            ):
                lib.AutoModel.register(bert, lib.BertModel)
        assert registry.REGISTERED_CONFIGS == {} and registry.REGISTERED_MODELS == {}
        with pytest.raises(ValueError, match="a subclass of fastbert.BertConfig"):
            fastbert.AutoConfig.register("other", OtherConfig)
        with pytest.raises(ValueError, match="fastbert's Auto classes build fastbert models"):
            fastbert.AutoModel.register(OurOtherConfig, TheirModel)
        with pytest.raises(ValueError, match="build from fastbert configs"):
            fastbert.AutoModel.register("my-bert", MyBertModel)
        # RoBERTa has no next-sentence head: its config class is free for that Auto class

        class RobertaForNextSentencePrediction(fastbert.BertForNextSentencePrediction):
            config_class = fastbert.RobertaConfig

        auto = fastbert.AutoModelForNextSentencePrediction
        auto.register(fastbert.RobertaConfig, RobertaForNextSentencePrediction)
        roberta = fastbert.RobertaConfig(**hf_config("bert").to_dict())
        assert type(auto.from_config(roberta)) is RobertaForNextSentencePrediction

        class MyBertOverride(fastbert.BertConfig):
            pass

        class MyBertModelOverride(fastbert.BertModel):
            config_class = MyBertOverride

        fastbert.AutoConfig.register("bert", MyBertOverride, exist_ok=True)
        assert type(fastbert.AutoConfig.from_pretrained(saved("bert", "base"))) is MyBertOverride
        fastbert.AutoModel.register(MyBertOverride, MyBertModelOverride, exist_ok=True)
        assert type(fastbert.AutoModel.from_pretrained(saved("bert", "base"))) is MyBertModelOverride
    assert type(fastbert.AutoConfig.from_pretrained(saved("bert", "base"))) is fastbert.BertConfig
