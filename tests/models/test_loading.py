"""from_pretrained / save_pretrained: real checkpoints, key renames, round trips, bad checkpoints."""

import json
import os
import re
import shutil

import pytest
import torch
from model_helpers import (
    TINY,
    fake_hub_api,
    in_float64,
    minilm_folder,
    perturb_norms_and_biases,
    require_transformers,
    tiny_family_config,
)
from safetensors.torch import load_file, save_file

import fastbert
from fastbert import registry
from fastbert.core.tolerances import assert_close

transformers = require_transformers()


def antiberty_dir(tmp_path):
    antiberty = pytest.importorskip("antiberty")
    root = os.path.join(os.path.dirname(antiberty.__file__), "trained_models")
    folder = tmp_path / "antiberty"
    shutil.copytree(os.path.join(root, "AntiBERTy_md_smooth"), folder)
    shutil.copy(os.path.join(root, "vocab.txt"), folder / "vocab.txt")
    return str(folder)


def interrupted_at_call(write, n: int):
    """``write`` that raises KeyboardInterrupt at its ``n``-th call (a save interrupted part-way)."""
    calls = []

    def wrapper(*args, **kwargs):
        calls.append(1)
        if len(calls) == n:
            raise KeyboardInterrupt
        return write(*args, **kwargs)

    return wrapper


def save_tiny(tmp_path, name="BertForMaskedLM", **overrides):
    torch.manual_seed(0)
    hf = getattr(transformers, name)(transformers.BertConfig(**TINY, **overrides)).eval()
    hf.save_pretrained(tmp_path)
    return hf


def test_minilm_sentence_embedding_matches_transformers():
    path = minilm_folder()
    tok = fastbert.AutoTokenizer.from_pretrained(path)
    sentences = ["A man is eating food.", "Plants create energy through photosynthesis, a process.", "Hi"]
    enc = tok(sentences, padding=True, return_tensors="pt")
    fb = fastbert.AutoModel.from_pretrained(path)
    hf = transformers.AutoModel.from_pretrained(path).eval()
    assert type(fb).__name__ == "BertModel" and fb.attn_implementation == "sdpa"

    def mean_pool(h, mask):
        m = mask[..., None].float()
        return torch.nn.functional.normalize((h * m).sum(1) / m.sum(1), dim=-1)

    with torch.no_grad():
        a = mean_pool(fb(**enc).last_hidden_state, enc["attention_mask"])
        b = mean_pool(hf(**enc).last_hidden_state, enc["attention_mask"])
    exact = mean_pool(in_float64(hf, **enc).last_hidden_state, enc["attention_mask"])
    assert_close(a, b, exact, torch.float32, what="MiniLM embeddings")


def test_antiberty_masked_lm_logits_match_transformers(tmp_path):
    folder = antiberty_dir(tmp_path)
    tok = fastbert.BertTokenizer.from_pretrained(folder)
    enc = tok(["E V Q L V E S G G G L V Q P G", "Q V Q L [MASK] Q S"], padding=True, return_tensors="pt")
    # architectures is ["AntiBERTy"]: the auto class falls back to the class asked for
    fb, info = fastbert.AutoModelForMaskedLM.from_pretrained(folder, output_loading_info=True)
    assert type(fb).__name__ == "BertForMaskedLM"
    assert sorted(info["unexpected_keys"]) == [
        "bert.pooler.dense.bias",
        "bert.pooler.dense.weight",
        "cls.chain.bias",
        "cls.chain.weight",
        "cls.graft.bias",
        "cls.graft.weight",
        "cls.species.bias",
        "cls.species.weight",
    ]
    assert info["missing_keys"] == set()
    hf = transformers.BertForMaskedLM.from_pretrained(folder).eval()
    with torch.no_grad():
        a = fb(**enc).logits
        b = hf(**enc).logits
    m = enc["attention_mask"].bool()
    assert_close(a[m], b[m], in_float64(hf, **enc).logits[m], torch.float32, what="antiberty logits")


@pytest.mark.parametrize("name", ["BertForPreTraining", "BertForSequenceClassification", "BertLMHeadModel"])
def test_save_then_transformers_loads_same_outputs(tmp_path, name):
    torch.manual_seed(0)
    config = fastbert.BertConfig(**TINY, is_decoder=name == "BertLMHeadModel", num_labels=3)
    fb = perturb_norms_and_biases(getattr(fastbert, name)(config)).eval()  # a lost bias would show
    fb.save_pretrained(tmp_path)
    assert os.path.exists(tmp_path / "model.safetensors")
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["architectures"] == [name] and saved["model_type"] == "bert"
    hf = getattr(transformers, name).from_pretrained(tmp_path).eval()
    ids = torch.randint(0, 99, (2, 9))
    with torch.no_grad():
        a = fb(input_ids=ids).to_tuple()[0]
        b = hf(input_ids=ids).to_tuple()[0]
    assert_close(a, b, in_float64(hf, input_ids=ids).to_tuple()[0], torch.float32, what=name)
    # and back into fastbert, with the tied decoder
    again = getattr(fastbert, name).from_pretrained(tmp_path)
    with torch.no_grad():
        torch.testing.assert_close(again(input_ids=ids).to_tuple()[0], a)
    if name != "BertForSequenceClassification":
        assert again.cls.predictions.decoder.weight is again.bert.embeddings.word_embeddings.weight


def test_bin_checkpoint_with_legacy_names_and_no_model_type(tmp_path):
    hf = save_tiny(tmp_path)
    state = hf.state_dict()
    legacy = {}
    for k, v in state.items():  # gamma/beta, old style
        if "LayerNorm.weight" in k:
            k = k.replace("LayerNorm.weight", "LayerNorm.gamma")
        elif "LayerNorm.bias" in k:
            k = k.replace("LayerNorm.bias", "LayerNorm.beta")
        legacy[k] = v.clone()
    os.remove(tmp_path / "model.safetensors")
    torch.save(legacy, tmp_path / "pytorch_model.bin")
    cfg = json.loads((tmp_path / "config.json").read_text())
    cfg.pop("model_type")
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    fb = fastbert.BertForMaskedLM.from_pretrained(tmp_path)
    ids = torch.randint(0, 99, (2, 7))
    with torch.no_grad():
        got, want = fb(input_ids=ids).logits, hf(input_ids=ids).logits
    assert_close(got, want, in_float64(hf, input_ids=ids).logits, torch.float32, what="logits")


def test_bert_prefix_added_and_stripped(tmp_path):
    hf = save_tiny(tmp_path, "BertModel")
    # a base checkpoint (no prefix) into a head model: base weights load, the head is initialised
    model, info = fastbert.BertForSequenceClassification.from_pretrained(tmp_path, output_loading_info=True)
    assert sorted(info["missing_keys"]) == ["classifier.bias", "classifier.weight"]
    torch.testing.assert_close(
        model.bert.embeddings.word_embeddings.weight, hf.embeddings.word_embeddings.weight
    )
    assert model.classifier.weight.std().item() == pytest.approx(0.02, rel=0.5)
    # a head checkpoint (with prefix) into the base model
    head_dir = tmp_path / "head"
    save_tiny(head_dir, "BertForMaskedLM")
    base, info = fastbert.BertModel.from_pretrained(head_dir, output_loading_info=True)
    assert "pooler.dense.weight" in info["missing_keys"]
    assert all(not k.startswith("bert.") for k in info["missing_keys"])


def test_sharded_checkpoint(tmp_path):
    hf = save_tiny(tmp_path, "BertModel")
    state = load_file(tmp_path / "model.safetensors")
    os.remove(tmp_path / "model.safetensors")
    keys = sorted(state)
    half = len(keys) // 2
    shards = {
        "model-00001-of-00002.safetensors": keys[:half],
        "model-00002-of-00002.safetensors": keys[half:],
    }
    weight_map = {}
    for fname, ks in shards.items():
        save_file({k: state[k].contiguous() for k in ks}, tmp_path / fname)
        weight_map.update({k: fname for k in ks})
    (tmp_path / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {}, "weight_map": weight_map})
    )
    fb = fastbert.BertModel.from_pretrained(tmp_path)
    torch.testing.assert_close(
        fb.encoder.layer[1].output.dense.weight, hf.encoder.layer[1].output.dense.weight
    )
    os.remove(tmp_path / "model-00002-of-00002.safetensors")
    with pytest.raises(OSError, match="model-00002-of-00002"):
        fastbert.BertModel.from_pretrained(tmp_path)


def test_an_index_listing_what_no_shard_holds_loads_as_transformers(tmp_path):
    """As transformers 5.25: a tensor the index lists that no shard holds is no error (a weight of the model is
    reported missing and initialised, another is not reported); a shard file that is not there is a
    FileNotFoundError naming it. (fastbert refused the first with an OSError.)"""
    hf = transformers.BertModel(transformers.BertConfig(**TINY)).eval()
    hf.save_pretrained(tmp_path / "m", max_shard_size="20KB")
    index_file = tmp_path / "m" / "model.safetensors.index.json"
    index = json.loads(index_file.read_text())
    key = "encoder.layer.0.attention.self.query.weight"
    shard = tmp_path / "m" / index["weight_map"][key]
    held = load_file(shard)
    del held[key]
    save_file(held, shard, metadata={"format": "pt"})
    index["weight_map"]["encoder.layer.9.extra.weight"] = index["weight_map"][key]
    index_file.write_text(json.dumps(index))
    _, hf_info = transformers.BertModel.from_pretrained(tmp_path / "m", output_loading_info=True)
    fb, info = fastbert.BertModel.from_pretrained(tmp_path / "m", output_loading_info=True)
    assert set(info["missing_keys"]) == set(hf_info["missing_keys"]) == {key}
    assert not info["unexpected_keys"] and not hf_info["unexpected_keys"]
    torch.testing.assert_close(
        fb.encoder.layer[1].output.dense.weight, hf.encoder.layer[1].output.dense.weight
    )
    assert torch.isfinite(fb.encoder.layer[0].attention.self.query.weight).all()
    last = sorted(set(index["weight_map"].values()))[-1]
    os.remove(tmp_path / "m" / last)
    with pytest.raises(FileNotFoundError, match=last):
        transformers.BertModel.from_pretrained(tmp_path / "m")
    with pytest.raises(FileNotFoundError, match=f"{last}.*missing"):
        fastbert.BertModel.from_pretrained(tmp_path / "m")


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, "auto"])
def test_torch_dtype_and_device_map(tmp_path, dtype):
    hf = save_tiny(tmp_path, "BertModel")
    if dtype == "auto":
        hf.to(torch.bfloat16).save_pretrained(tmp_path)
    fb = fastbert.BertModel.from_pretrained(tmp_path, torch_dtype=dtype, device_map="auto")
    expected = torch.bfloat16 if dtype == "auto" else dtype
    assert fb.dtype == expected and fb.device.type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert not fb.training


def test_config_kwargs_override(tmp_path):
    save_tiny(tmp_path, "BertModel")
    model = fastbert.BertForTokenClassification.from_pretrained(tmp_path, num_labels=5)
    assert model.classifier.out_features == 5 and model.config.num_labels == 5


def test_mismatched_shapes_raise_unless_ignored(tmp_path):
    save_tiny(tmp_path, "BertForSequenceClassification", num_labels=2)
    with pytest.raises(RuntimeError, match="classifier.weight"):  # transformers' exception type
        fastbert.BertForSequenceClassification.from_pretrained(tmp_path, num_labels=4)
    model, info = fastbert.BertForSequenceClassification.from_pretrained(
        tmp_path, num_labels=4, ignore_mismatched_sizes=True, output_loading_info=True
    )
    assert info["mismatched_keys"] == {
        ("classifier.weight", torch.Size([2, 36]), torch.Size([4, 36])),
        ("classifier.bias", torch.Size([2]), torch.Size([4])),
    }
    assert "classifier.weight" not in info["missing_keys"]  # as transformers 5: mismatched, not missing


def test_folder_without_weights(tmp_path):
    fastbert.BertConfig(**TINY).save_pretrained(tmp_path)
    with pytest.raises(OSError, match="holds no model weights"):
        fastbert.BertModel.from_pretrained(tmp_path)


def test_weights_of_another_variant_are_named_with_the_variant_that_loads_them(tmp_path):
    """A folder with only fp16-variant weights loaded without variant (and the reverse) failed as transformers
    5.25 does ("no model weights"), without saying that the weights there load with another variant: the
    error names the file and the variant= to pass."""
    hf = transformers.BertModel(transformers.BertConfig(**TINY))
    hf.save_pretrained(tmp_path / "v", variant="fp16", max_shard_size="20KB")
    said = r"holds no model weights.*it holds model\.safetensors\.index\.fp16\.json: pass variant='fp16'"
    with pytest.raises(OSError, match=said):
        fastbert.BertModel.from_pretrained(tmp_path / "v")
    fastbert.BertModel.from_pretrained(tmp_path / "v", variant="fp16")
    hf.save_pretrained(tmp_path / "plain")
    with pytest.raises(
        OSError, match=r"no weights of variant 'fp16'.*it holds model\.safetensors: pass variant=None"
    ):
        fastbert.BertModel.from_pretrained(tmp_path / "plain", variant="fp16")


def test_folder_without_config(tmp_path):
    with pytest.raises(OSError, match="config.json"):
        fastbert.BertModel.from_pretrained(tmp_path)


def test_weights_without_a_usable_config_and_a_config_without_usable_weights_name_the_file(tmp_path):
    """config.json is read before the weights (as transformers): a folder with weights and no config.json says
    that its weights need one (it asked "is it a model folder?"; transformers 5.25 loads a default config and
    fails on a size mismatch); a broken config.json beside good weights, and corrupt weights beside a good
    config.json, are each named, with their folder."""
    save_tiny(tmp_path, "BertModel")
    config = (tmp_path / "config.json").read_text()
    os.remove(tmp_path / "config.json")
    with pytest.raises(
        OSError,
        match=f"^{re.escape(str(tmp_path))} has no config.json .*weights beside it \\(model.safetensors\\)",
    ):
        fastbert.BertModel.from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text("{broken")
    with pytest.raises(OSError, match="^" + re.escape(f"{tmp_path / 'config.json'} is not valid JSON")):
        fastbert.BertModel.from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text(config)
    (tmp_path / "model.safetensors").write_bytes(b"xx")
    with pytest.raises(
        OSError, match="^" + re.escape(f"{tmp_path / 'model.safetensors'} is not a readable safetensors file")
    ):
        fastbert.BertModel.from_pretrained(tmp_path)
    os.remove(tmp_path / "model.safetensors")
    with pytest.raises(
        OSError, match="^" + re.escape(f"{tmp_path} holds no model weights: expected model.safetensors")
    ):
        fastbert.BertModel.from_pretrained(tmp_path)


def test_truncated_safetensors(tmp_path):
    save_tiny(tmp_path, "BertModel")
    data = (tmp_path / "model.safetensors").read_bytes()
    (tmp_path / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(OSError, match="model.safetensors"):
        fastbert.BertModel.from_pretrained(tmp_path)


def test_corrupt_bin(tmp_path):
    save_tiny(tmp_path, "BertModel")
    os.remove(tmp_path / "model.safetensors")
    (tmp_path / "pytorch_model.bin").write_bytes(b"not a checkpoint at all")
    with pytest.raises(OSError, match="pytorch_model.bin"):
        fastbert.BertModel.from_pretrained(tmp_path)


def test_unreachable_hub_id_says_pass_a_local_folder(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(OSError, match="local folder"):
        fastbert.BertModel.from_pretrained("google-bert/bert-base-uncased")


# from_transformers on all nine classes: tests/models/test_weights.py


def test_auto_classes_dispatch_on_architectures(tmp_path):
    save_tiny(tmp_path, "BertForPreTraining")
    assert type(fastbert.AutoModelForPreTraining.from_pretrained(tmp_path)).__name__ == "BertForPreTraining"
    assert type(fastbert.AutoModelForMaskedLM.from_pretrained(tmp_path)).__name__ == "BertForMaskedLM"
    assert type(fastbert.AutoModel.from_pretrained(tmp_path)).__name__ == "BertModel"
    assert (
        type(fastbert.AutoModelForQuestionAnswering.from_pretrained(tmp_path)).__name__
        == "BertForQuestionAnswering"
    )
    assert fastbert.AutoConfig.from_pretrained(tmp_path).hidden_size == 36


@pytest.mark.parametrize("model_type", [t for t in registry.supported_model_types() if t != "bert"])
def test_a_config_without_model_type_is_read_as_its_family(tmp_path, model_type):
    """A config.json without ``model_type`` (checkpoints in the wild) is read as the family of its
    ``architectures``; without those either, by transformers 4's rule (the longest supported model_type in
    the path); as BERT when nothing says (a RoBERTa checkpoint was loaded as a random BERT with a warning)."""
    torch.manual_seed(0)
    model = registry.model_class(model_type, "masked-lm")(tiny_family_config(model_type, width=32)).eval()
    folder = tmp_path / "checkpoint"
    model.save_pretrained(folder)
    config_file = folder / "config.json"
    cfg = json.loads(config_file.read_text())
    cfg.pop("model_type")
    config_file.write_text(json.dumps(cfg))
    ids = torch.randint(3, 90, (2, 7))
    with torch.no_grad():
        want = model(input_ids=ids).logits
        loaded = fastbert.AutoModelForMaskedLM.from_pretrained(folder)
        assert type(loaded) is type(model)
        assert torch.equal(loaded(input_ids=ids).logits, want)
    cfg.pop("architectures")
    config_file.write_text(json.dumps(cfg))
    named = tmp_path / f"my-{model_type}-checkpoint"
    shutil.copytree(folder, named)
    assert type(fastbert.AutoModelForMaskedLM.from_pretrained(named)) is type(model)
    assert type(fastbert.AutoConfig.from_pretrained(named)) is type(model.config)
    assert fastbert.AutoConfig.from_pretrained(folder).model_type == "bert"  # nothing says


@pytest.mark.parametrize(
    "name", ["albert-base-v2", "xlm-roberta-xl", "roberta-prelayernorm-base", "deberta-v3-small"]
)
def test_a_config_without_model_type_named_as_another_transformers_model_is_refused(tmp_path, name):
    """transformers 4's rule is the longest of *its* model types in the path: ``albert-base-v2`` is ALBERT and
    ``xlm-roberta-xl`` is XLM-RoBERTa-XL there (other architectures); fastbert read them as BERT / XLM-R."""
    folder = tmp_path / name
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"hidden_size": 32, "num_attention_heads": 4}))
    with pytest.raises(ValueError, match="no model_type.*not support"):
        fastbert.AutoConfig.from_pretrained(folder)
    with pytest.raises(ValueError, match="no model_type.*not support"):
        fastbert.AutoModel.from_pretrained(folder)
    named = tmp_path / "xlm-roberta-base"  # a supported one still reads as its family
    named.mkdir()
    (named / "config.json").write_text(json.dumps({"hidden_size": 32, "num_attention_heads": 4}))
    assert fastbert.AutoConfig.from_pretrained(named).model_type == "xlm-roberta"


def test_a_checkpoint_with_pruned_heads_is_refused_by_name(tmp_path):
    """transformers 4's prune_heads saves smaller attention matrices and config.json's pruned_heads:
    refused before any weight is read, naming pruned_heads (it failed later on a size mismatch)."""
    save_tiny(tmp_path, "BertModel")
    config_file = tmp_path / "config.json"
    cfg = json.loads(config_file.read_text())
    cfg["pruned_heads"] = {"0": [1, 2]}
    config_file.write_text(json.dumps(cfg))
    for name in ("model.safetensors", "pytorch_model.bin"):
        (tmp_path / name).unlink(missing_ok=True)  # no weights at all: the refusal comes first
    with pytest.raises(ValueError, match="pruned_heads"):
        fastbert.BertModel.from_pretrained(tmp_path)


def test_attn_implementation_choice(tmp_path):
    save_tiny(tmp_path, "BertModel")
    assert (
        fastbert.BertModel.from_pretrained(tmp_path, attn_implementation="eager").attn_implementation
        == "eager"
    )
    with pytest.raises(ValueError, match="attn_implementation"):
        fastbert.BertModel.from_pretrained(tmp_path, attn_implementation="flash_attention_2")
    with pytest.raises(ValueError, match="attn_implementation"):
        fastbert.BertModel.from_pretrained(tmp_path, attn_implementation="nope")


def test_from_tf_falls_back_to_pytorch_weights(tmp_path):
    hf = save_tiny(tmp_path, "BertModel")
    fb = fastbert.BertModel.from_pretrained(tmp_path, from_tf=True)
    torch.testing.assert_close(fb.embeddings.word_embeddings.weight, hf.embeddings.word_embeddings.weight)


def test_loading_and_a_forward_pass_leave_torch_dynamo_and_sympy_unimported(tmp_path):
    """The model is built on the meta device without the torch ops whose meta kernels import torch._dynamo
    (``normal_``, ``cat``) or sympy (``arange``, ``empty_like``): those imports took ~2.6 s of a small
    model's 3 s ``from_pretrained`` on a 2-core machine. Every family, and BERT's relative positions, loaded
    and run in a fresh process. On torch 2.10 the meta kernel of ``uniform_`` (nn.Linear's own init) calls
    ``torch._check``, which imports sympy; from torch 2.11 on it does not, and sympy is checked there."""
    import subprocess
    import sys

    from model_helpers import tiny_family_config

    configs = {t: tiny_family_config(t, width=32) for t in registry.supported_model_types()}
    configs["bert-relative"] = tiny_family_config(
        "bert", width=32, position_embedding_type="relative_key_query"
    )
    folders = []
    for name, config in configs.items():
        torch.manual_seed(0)
        model = registry.model_class(config.model_type, "masked-lm")(config)
        model.save_pretrained(tmp_path / name)
        folders.append(str(tmp_path / name))
    code = (
        "import sys, torch, fastbert\n"
        "ids, mask = torch.tensor([[5, 6, 7, 8]]), torch.tensor([[1, 1, 1, 0]])\n"
        "for folder in sys.argv[1:]:\n"
        "    model = fastbert.AutoModelForMaskedLM.from_pretrained(folder)\n"
        "    with torch.no_grad():\n"
        "        assert torch.isfinite(model(input_ids=ids, attention_mask=mask).logits).all(), folder\n"
        "assert 'torch._dynamo' not in sys.modules, 'torch._dynamo imported'\n"
        "assert 'sympy' not in sys.modules or torch.__version__ < '2.11', 'sympy imported'\n"
    )
    subprocess.run([sys.executable, "-c", code, *folders], check=True)


def test_index_shards_stay_in_the_model_folder(tmp_path):
    """As transformers 5: an index naming a shard outside the folder (``../x``, an absolute path) is refused,
    and a weight_map that is no mapping is a clear OSError."""
    save_tiny(tmp_path / "m", "BertModel")
    state = load_file(tmp_path / "m" / "model.safetensors")
    os.remove(tmp_path / "m" / "model.safetensors")
    save_file({k: v.contiguous() for k, v in state.items()}, tmp_path / "outside.safetensors")
    index = tmp_path / "m" / "model.safetensors.index.json"
    for shard in ("../outside.safetensors", str(tmp_path / "outside.safetensors")):
        index.write_text(json.dumps({"metadata": {}, "weight_map": {k: shard for k in state}}))
        with pytest.raises(OSError, match="points outside the model directory"):
            fastbert.BertModel.from_pretrained(tmp_path / "m")
    index.write_text(json.dumps({"metadata": {}, "weight_map": list(state)}))
    with pytest.raises(OSError, match="weight_map is not a name -> file mapping"):
        fastbert.BertModel.from_pretrained(tmp_path / "m")
    # an empty weight_map loaded a model of random weights, with a warning only (transformers: an IndexError)
    index.write_text(json.dumps({"metadata": {}, "weight_map": {}}))
    with pytest.raises(OSError, match="weight_map is empty"):
        fastbert.BertModel.from_pretrained(tmp_path / "m")


def test_unknown_keywords_are_refused_and_push_to_hub_uploads(tmp_path, monkeypatch):
    """A misspelt keyword is a TypeError (transformers passes it to the class, which refuses it), never a new
    config field; save_pretrained(push_to_hub=True) uploads the folder through huggingface_hub."""
    save_tiny(tmp_path / "m", "BertForSequenceClassification")
    with pytest.raises(TypeError, match="unexpected keyword argument 'num_label'"):
        fastbert.BertForSequenceClassification.from_pretrained(tmp_path / "m", num_label=5)
    model = fastbert.BertForSequenceClassification.from_pretrained(
        tmp_path / "m", num_labels=2, output_attentions=True
    )
    assert model.config.output_attentions is True
    with pytest.raises(TypeError, match="safe_serialisation"):
        model.save_pretrained(tmp_path / "out", safe_serialisation=False)
    calls = fake_hub_api(monkeypatch)
    model.save_pretrained(tmp_path / "pushed", push_to_hub=True, repo_id="me/tiny", private=True, token="t")
    assert calls == [
        ("token", "t"),
        ("create", "me/tiny", True, True),
        ("upload", "me/tiny", ["config.json", "model.safetensors"], "Upload model"),
    ]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"save_peft_format": False},
        {"save_peft_format": True, "save_original_format": False},
        {"distributed_checkpoint": False, "max_shard_size": "10KB"},
    ],
)
def test_transformers_5_save_keywords_write_the_files_transformers_writes(tmp_path, kwargs):
    """transformers 5.25's save_pretrained takes save_peft_format, save_original_format and
    distributed_checkpoint=False (no adapters, no converted weights: the same files); fastbert refused them as
    unexpected keywords. distributed_checkpoint=True is a ValueError in both (fastbert's before it writes anything)."""
    hf = save_tiny(tmp_path / "m", "BertForMaskedLM")
    model = fastbert.BertForMaskedLM.from_pretrained(tmp_path / "m")
    hf.save_pretrained(tmp_path / "hf", **kwargs)
    model.save_pretrained(tmp_path / "fb", **kwargs)
    names = sorted(os.listdir(tmp_path / "hf"))
    assert sorted(os.listdir(tmp_path / "fb")) == names
    for name in (n for n in names if n.endswith(".safetensors")):
        ours, theirs = load_file(tmp_path / "fb" / name), load_file(tmp_path / "hf" / name)
        assert sorted(ours) == sorted(theirs)
        for key in theirs:
            torch.testing.assert_close(ours[key], theirs[key], rtol=0, atol=0)
    for name, lib_model in (("hf-dist", hf), ("fb-dist", model)):
        with pytest.raises(ValueError, match="distributed_checkpoint=True"):
            lib_model.save_pretrained(tmp_path / name, distributed_checkpoint=True)
    assert not os.path.exists(tmp_path / "fb-dist")  # transformers writes config.json first


def test_a_failed_bin_save_leaves_no_truncated_file(tmp_path, monkeypatch):
    """safe_serialization=False writes pytorch_model.bin beside its target and renames it once complete: a
    save that fails half way leaves the earlier file as it was and no temporary."""
    save_tiny(tmp_path / "m", "BertModel")
    model = fastbert.BertModel.from_pretrained(tmp_path / "m")
    model.save_pretrained(tmp_path / "out", safe_serialization=False)
    before = (tmp_path / "out" / "pytorch_model.bin").read_bytes()

    def half_then_fail(obj, f, *args, **kwargs):
        f.write(b"PK\x03\x04 half a file")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", half_then_fail)
    with pytest.raises(OSError, match="disk full"):
        model.save_pretrained(tmp_path / "out", safe_serialization=False)
    assert (tmp_path / "out" / "pytorch_model.bin").read_bytes() == before
    assert not [n for n in os.listdir(tmp_path / "out") if n.startswith(".")]


@pytest.mark.parametrize("safe_serialization", [True, False])
def test_an_interrupted_save_over_as_many_shards_leaves_no_mix(tmp_path, monkeypatch, safe_serialization):
    """A sharded save over an earlier one with the same shard names renames its files over the earlier ones
    only once all are written: interrupted at its third shard, the folder still holds the earlier weights
    alone (the first shards were renamed as they were written, and the folder loaded a mix of both saves)."""
    import safetensors.torch

    save_tiny(tmp_path / "m", "BertModel")
    model = fastbert.BertModel.from_pretrained(tmp_path / "m")
    out = tmp_path / "out"
    kw = {"max_shard_size": "20KB", "safe_serialization": safe_serialization}
    model.save_pretrained(out, **kw)
    earlier = {k: v.clone() for k, v in model.state_dict().items()}
    files = sorted(os.listdir(out))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    module, name = (safetensors.torch, "save_file") if safe_serialization else (torch, "save")
    write = getattr(module, name)
    with monkeypatch.context() as m:
        m.setattr(module, name, interrupted_at_call(write, 3))
        with pytest.raises(KeyboardInterrupt):
            model.save_pretrained(out, **kw)
    assert sorted(os.listdir(out)) == files  # no temporary left
    reloaded = fastbert.BertModel.from_pretrained(out).state_dict()
    for key, value in earlier.items():
        assert torch.equal(reloaded[key], value), key
    model.save_pretrained(out, **kw)
    reloaded = fastbert.BertModel.from_pretrained(out).state_dict()
    assert all(torch.equal(reloaded[k], v) for k, v in model.state_dict().items())


def test_from_pretrained_none_takes_config_and_state_dict(tmp_path, monkeypatch):
    """``from_pretrained(None, config=..., state_dict=...)`` loads as transformers; without one of the two it is
    a ValueError saying so, before anything is looked up (``"None"`` was looked up as a hub id)."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    save_tiny(tmp_path / "m", "BertModel")
    config = fastbert.BertConfig.from_pretrained(tmp_path / "m")
    state = fastbert.BertModel.from_pretrained(tmp_path / "m").state_dict()
    model = fastbert.BertModel.from_pretrained(None, config=config, state_dict=state)
    assert torch.equal(model.pooler.dense.weight, state["pooler.dense.weight"])
    for kw in ({"config": config}, {"state_dict": state}, {}):
        with pytest.raises(ValueError, match=r"from_pretrained\(None\) needs both config= and state_dict="):
            fastbert.BertModel.from_pretrained(None, **kw)


def test_a_sharded_save_keeps_another_variants_shards(tmp_path):
    """A sharded save removes the stale shards of its own name only: saved after an fp16 variant in the same
    folder, it removed model.fp16-0000N-of-0000M.safetensors too (transformers' pattern does), and the
    variant's index named shards that were gone."""
    save_tiny(tmp_path / "m", "BertModel")
    model = fastbert.BertModel.from_pretrained(tmp_path / "m")
    out = tmp_path / "out"
    model.save_pretrained(out, variant="fp16", max_shard_size="20KB")
    variant_files = sorted(os.listdir(out))
    model.save_pretrained(out, max_shard_size="10KB")
    model.save_pretrained(out, max_shard_size="20KB")  # and its own stale shards still go
    assert set(variant_files) <= set(os.listdir(out))
    own = json.loads((out / "model.safetensors.index.json").read_text())["weight_map"].values()
    assert {n for n in os.listdir(out) if n.startswith("model-")} == set(own)
    for variant in ("fp16", None):
        reloaded = fastbert.BertModel.from_pretrained(out, variant=variant)
        assert torch.equal(reloaded.pooler.dense.weight, model.pooler.dense.weight)


def test_save_function_writes_the_bin_files(tmp_path):
    """transformers 4's ``save_function`` (``save_pretrained(out, is_main_process=..., save_function=
    accelerator.save)``, its no-trainer examples' call) writes each .bin shard; safetensors files are written by
    safetensors, as transformers 4. It was refused with a TypeError."""
    save_tiny(tmp_path / "m", "BertModel")
    model = fastbert.BertModel.from_pretrained(tmp_path / "m")
    calls = []

    def save_function(obj, f):
        calls.append(sorted(obj))
        torch.save(obj, f)

    model.save_pretrained(tmp_path / "bin", save_function=save_function, safe_serialization=False)
    assert calls == [sorted(model.state_dict())]
    assert sorted(os.listdir(tmp_path / "bin")) == ["config.json", "pytorch_model.bin"]
    for cls in (fastbert.BertModel, transformers.BertModel):
        reloaded = cls.from_pretrained(tmp_path / "bin")
        assert torch.equal(reloaded.pooler.dense.weight, model.pooler.dense.weight)
    calls.clear()
    model.save_pretrained(tmp_path / "st", save_function=save_function)
    assert calls == [] and "model.safetensors" in os.listdir(tmp_path / "st")
    # a save_function that writes nothing (accelerator.save off the main process) leaves the earlier files, as
    # transformers 4 (it replaced pytorch_model.bin with the empty temporary file)
    before = (tmp_path / "bin" / "pytorch_model.bin").read_bytes()
    model.save_pretrained(tmp_path / "bin", save_function=lambda obj, f: None, safe_serialization=False)
    assert (tmp_path / "bin" / "pytorch_model.bin").read_bytes() == before
    assert sorted(os.listdir(tmp_path / "bin")) == ["config.json", "pytorch_model.bin"]


def test_a_failed_safetensors_or_config_save_leaves_the_earlier_files(tmp_path, monkeypatch):
    """model.safetensors (the default), config.json and generation_config.json are written beside their
    targets and renamed once complete, as the .bin: a save interrupted half way (Ctrl-C, a full disk)
    left a truncated model.safetensors or an emptied config.json, losing the earlier save."""
    import safetensors.torch

    save_tiny(tmp_path / "m", "BertModel")
    model = fastbert.BertModel.from_pretrained(tmp_path / "m")
    out = tmp_path / "out"
    model.save_pretrained(out)
    before = {n: (out / n).read_bytes() for n in os.listdir(out)}
    assert "model.safetensors" in before and "config.json" in before

    def half_then_interrupt(tensors, filename, metadata=None):
        with open(filename, "wb") as f:
            f.write(b"\x08\x00\x00 half a file")
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(safetensors.torch, "save_file", half_then_interrupt)
        with pytest.raises(KeyboardInterrupt):
            model.save_pretrained(out)

    def no_json(self, *args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(type(model.config), "to_json_string", no_json)
    with pytest.raises(OSError, match="disk full"):
        model.save_pretrained(out)
    assert {n: (out / n).read_bytes() for n in os.listdir(out)} == before  # no temporary left either
    monkeypatch.undo()
    assert torch.equal(
        fastbert.BertModel.from_pretrained(out).embeddings.word_embeddings.weight,
        model.embeddings.word_embeddings.weight,
    )


def test_an_interrupted_sharded_save_leaves_the_earlier_shards(tmp_path, monkeypatch):
    """A sharded save over an earlier one with more shards removes the earlier shards once its index is
    written: it removed them first, and a save interrupted at its second shard left the earlier index
    naming shards that were gone (the folder no longer loaded)."""
    import safetensors.torch

    save_tiny(tmp_path / "m", "BertModel")
    model = fastbert.BertModel.from_pretrained(tmp_path / "m")
    out = tmp_path / "out"
    model.save_pretrained(out, max_shard_size="10KB")
    earlier = sorted(n for n in os.listdir(out) if n.endswith(".safetensors"))
    assert len(earlier) > 3
    with monkeypatch.context() as m:
        m.setattr(safetensors.torch, "save_file", interrupted_at_call(safetensors.torch.save_file, 2))
        with pytest.raises(KeyboardInterrupt):
            model.save_pretrained(out, max_shard_size="40KB")
    assert set(earlier) <= set(os.listdir(out))
    reloaded = fastbert.BertModel.from_pretrained(out)
    assert torch.equal(reloaded.embeddings.word_embeddings.weight, model.embeddings.word_embeddings.weight)
    model.save_pretrained(out, max_shard_size="40KB")  # completed: the earlier shards are gone
    shards = sorted(n for n in os.listdir(out) if n.endswith(".safetensors"))
    assert shards and not set(shards) & set(earlier)
    fastbert.BertModel.from_pretrained(out)


@pytest.mark.parametrize(
    "first, second",
    [
        ({}, {"max_shard_size": "20KB"}),  # one model.safetensors, then shards and an index
        ({}, {"safe_serialization": False}),  # model.safetensors, then pytorch_model.bin
        ({"max_shard_size": "20KB"}, {"safe_serialization": False}),  # safetensors shards, then a .bin
        ({"safe_serialization": False}, {"safe_serialization": False, "max_shard_size": "20KB"}),
    ],
)
def test_a_save_over_an_earlier_one_loads_as_saved(tmp_path, first, second):
    """A save into a folder that holds an earlier save in another layout: the earlier weights that loading
    prefers (model.safetensors before an index, safetensors before .bin) are removed, with their shards;
    they stayed, and from_pretrained (transformers' too) loaded the earlier weights, silently."""
    save_tiny(tmp_path / "m", "BertModel")
    model = fastbert.BertModel.from_pretrained(tmp_path / "m")
    out = tmp_path / "out"
    model.save_pretrained(out, **first)
    with torch.no_grad():
        model.embeddings.word_embeddings.weight.add_(1.0)
    model.save_pretrained(out, **second)
    again = fastbert.BertModel.from_pretrained(out)
    assert torch.equal(again.embeddings.word_embeddings.weight, model.embeddings.word_embeddings.weight)
    transformers = pytest.importorskip("transformers")
    theirs = transformers.BertModel.from_pretrained(out)
    assert torch.equal(theirs.embeddings.word_embeddings.weight, model.embeddings.word_embeddings.weight)


def test_use_safetensors_names_the_file_the_folder_holds(tmp_path):
    save_tiny(tmp_path / "m", "BertModel")
    with pytest.raises(
        OSError, match=r"has no pytorch_model.bin .*but holds model.safetensors: pass use_safetensors=True"
    ):
        fastbert.BertModel.from_pretrained(tmp_path / "m", use_safetensors=False)
    assert fastbert.BertModel.from_pretrained(tmp_path / "m", use_safetensors=True) is not None


def test_key_mapping_renames_the_checkpoint_tensors_as_transformers(tmp_path):
    """``key_mapping`` (a checkpoint whose names transformers' class does not use) renames the tensors before
    they are matched; fastbert dropped the keyword and loaded random weights, with every tensor missing."""
    hf = save_tiny(tmp_path / "m", "BertForSequenceClassification")
    state = load_file(str(tmp_path / "m" / "model.safetensors"))
    save_file(
        {k.replace("bert.", "encoder_model.", 1): v for k, v in state.items()},
        str(tmp_path / "m" / "model.safetensors"),
    )
    mapping = {"^encoder_model": "bert"}
    theirs, their_info = transformers.BertForSequenceClassification.from_pretrained(
        tmp_path / "m", key_mapping=mapping, output_loading_info=True
    )
    model, info = fastbert.BertForSequenceClassification.from_pretrained(
        tmp_path / "m", key_mapping=mapping, output_loading_info=True
    )
    assert not their_info["missing_keys"] and not their_info["unexpected_keys"]
    assert not info["missing_keys"] and not info["unexpected_keys"]
    for key, value in hf.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key
    with pytest.raises(ValueError, match="not a regular expression"):
        fastbert.BertForSequenceClassification.from_pretrained(tmp_path / "m", key_mapping={"(": "bert"})
    with pytest.raises(TypeError, match="key_mapping must be a dict"):
        fastbert.BertForSequenceClassification.from_pretrained(tmp_path / "m", key_mapping=[("a", "b")])


def test_dtype_wins_over_torch_dtype_as_in_transformers(tmp_path):
    """Both given: transformers loads ``dtype`` (``torch_dtype`` is its deprecated name); fastbert loaded
    ``torch_dtype``."""
    save_tiny(tmp_path / "m", "BertModel")
    kw = {"dtype": torch.bfloat16, "torch_dtype": torch.float16}
    theirs = transformers.BertModel.from_pretrained(tmp_path / "m", **kw)
    ours = fastbert.BertModel.from_pretrained(tmp_path / "m", **kw)
    assert ours.dtype == theirs.dtype == torch.bfloat16
    assert ours.config.dtype == theirs.config.dtype == torch.bfloat16


def test_transformers_keywords_at_their_default_are_accepted(tmp_path):
    """transformers 5's keywords of features fastbert has not (quantizers, tensor parallelism, GGUF, kernels,
    adapters, fusion) and of how files are read (``disable_mmap``) change nothing at their default: code that forwards them (``quantization_config=None``) loads in
    both; fastbert refused them as unknown keywords. Another value is refused, naming the keyword."""
    save_tiny(tmp_path / "m", "BertModel")
    kw = {
        "quantization_config": None,
        "tp_plan": None,
        "tp_size": None,
        "device_mesh": None,
        "distributed_config": None,
        "gguf_file": None,
        "use_kernels": False,
        "adapter_name": "default",
        "adapter_kwargs": {},
        "tqdm_class": None,
        "fusion_config": None,
        "disable_mmap": True,  # how the files are read: nothing to configure
    }
    theirs = transformers.BertModel.from_pretrained(tmp_path / "m", **kw)
    ours = fastbert.BertModel.from_pretrained(tmp_path / "m", **kw)
    assert torch.equal(ours.pooler.dense.weight, theirs.pooler.dense.weight)
    with pytest.raises(TypeError, match=r"tp_plan='auto' asks for a transformers feature"):
        fastbert.BertModel.from_pretrained(tmp_path / "m", tp_plan="auto")
    with pytest.raises(TypeError, match=r"fusion_config=\{'x': True\} asks for a transformers feature"):
        fastbert.BertModel.from_pretrained(tmp_path / "m", fusion_config={"x": True})
    with pytest.raises(TypeError, match=r"quantization_config=\{'load_in_8bit': True\}.*quantization='int8'"):
        fastbert.BertModel.from_pretrained(tmp_path / "m", quantization_config={"load_in_8bit": True})


def test_dtype_double_is_float64_as_in_transformers(tmp_path):
    """transformers reads a dtype string as ``torch``'s attribute: ``dtype="double"`` loads float64; fastbert
    called it an unknown dtype."""
    save_tiny(tmp_path / "m", "BertModel")
    theirs = transformers.BertModel.from_pretrained(tmp_path / "m", dtype="double")
    assert (
        fastbert.BertModel.from_pretrained(tmp_path / "m", dtype="double").dtype
        == theirs.dtype
        == torch.float64
    )


def test_a_bad_max_shard_size_is_refused_before_anything_is_written(tmp_path):
    """``save_pretrained(max_shard_size="abc")`` wrote config.json, then huggingface_hub refused the size: a
    folder holding an earlier save was left with the new config beside the old weights."""
    save_tiny(tmp_path / "m", "BertModel")
    model = fastbert.BertModel.from_pretrained(tmp_path / "m")
    out = tmp_path / "out"
    model.save_pretrained(out)
    before = {n: (out / n).read_bytes() for n in os.listdir(out)}
    model.config.layer_norm_eps = 1e-5  # a config that differs from the saved one
    with pytest.raises(ValueError, match="Unit"):
        model.save_pretrained(out, max_shard_size="abc")
    with pytest.raises(TypeError, match="max_shard_size"):
        model.save_pretrained(out, max_shard_size=1.5)
    assert {n: (out / n).read_bytes() for n in os.listdir(out)} == before
    model.save_pretrained(out, max_shard_size=10**9)  # bytes as an int still save


def test_max_shard_size_as_a_whole_float_shards_as_transformers(tmp_path):
    """transformers 5.25 takes max_shard_size=1e4 (bytes as a float, as people write 1e9); fastbert refused any
    float. A whole one writes transformers' shards; a fractional one (1.5 bytes) stays refused."""
    hf = save_tiny(tmp_path / "m", "BertModel")
    model = fastbert.BertModel.from_pretrained(tmp_path / "m")
    hf.save_pretrained(tmp_path / "hf", max_shard_size=1e4)
    model.save_pretrained(tmp_path / "fb", max_shard_size=1e4)
    names = sorted(os.listdir(tmp_path / "hf"))
    assert "model.safetensors.index.json" in names and sorted(os.listdir(tmp_path / "fb")) == names
    ours = json.loads((tmp_path / "fb" / "model.safetensors.index.json").read_text())["weight_map"]
    assert ours == json.loads((tmp_path / "hf" / "model.safetensors.index.json").read_text())["weight_map"]


@pytest.mark.parametrize("device_map", ["meta", {"": "meta"}, torch.device("meta")])
def test_device_map_meta_is_refused(tmp_path, device_map):
    """``device_map="meta"`` returned a model on the meta device, the weights read and dropped (and a head to
    initialise failed with "Tensor.item() cannot be called on meta tensors"); transformers refuses it."""
    save_tiny(tmp_path / "m", "BertModel")
    with pytest.raises(ValueError, match="device_map='meta' loads no weights"):
        fastbert.BertModel.from_pretrained(tmp_path / "m", device_map=device_map)
