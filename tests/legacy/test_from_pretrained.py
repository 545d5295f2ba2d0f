"""Legacy checkpoints through fastbert's own ``from_pretrained``, end to end."""

from __future__ import annotations

import os
import re
import shutil

import pytest
import torch
from legacy_helpers import (
    FIXTURES,
    GOOGLE,
    INDEX,
    SHARD,
    assert_pretraining_outputs,
    assert_same_outputs,
    copy_config,
    copy_files,
    corrupt,
    hf_outputs,
    with_head,
)
from legacy_writers import google_names, write_flax_msgpack, write_tf1_bundle, write_tf2_h5

import fastbert
from fastbert.config import BertConfig

CASES = {
    "tf2": (FIXTURES, ["tf_model.h5", "config.json"], {}),
    "flax": (FIXTURES, ["flax_model.msgpack", "config.json"], {}),
    "tf1": (GOOGLE, [INDEX, SHARD, "bert_config.json"], {}),
    "tf2-from_tf": (
        FIXTURES,
        ["tf_model.h5", "flax_model.msgpack", "config.json", "model.safetensors"],
        {"from_tf": True},
    ),
    "flax-from_flax": (
        FIXTURES,
        ["tf_model.h5", "flax_model.msgpack", "config.json", "model.safetensors"],
        {"from_flax": True},
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_pretraining(case, tmp_path, reference, inputs, expected):
    src, names, kwargs = CASES[case]
    folder = copy_files(src, tmp_path / "only", names)
    model = fastbert.BertForPreTraining.from_pretrained(str(folder), attn_implementation="eager", **kwargs)
    own = model.eval().state_dict()
    for k, v in reference.items():
        assert torch.equal(own[k], v), k
    with torch.no_grad():
        out = model(**inputs, output_hidden_states=True)
    assert_pretraining_outputs(out, expected)


@pytest.mark.parametrize("case", ["tf2", "flax", "tf1"])
def test_base_model(case, tmp_path, inputs, expected):
    src, names, kwargs = CASES[case]
    folder = copy_files(src, tmp_path / "only", names)
    model = fastbert.BertModel.from_pretrained(str(folder), attn_implementation="eager", **kwargs).eval()
    with torch.no_grad():
        out = model(**inputs)
    assert_same_outputs(out, expected, ["last_hidden_state", "pooler_output"])


def test_heads(tmp_path, reference, config, inputs, transformers):
    """TF 2 sequence classification, Flax QA, TF1 with optimizer slots into fastbert's classes."""
    cls_state = with_head(reference, "classifier", n=3)
    tf2 = tmp_path / "tf2"
    tf2.mkdir()
    write_tf2_h5(tf2 / "tf_model.h5", cls_state, model_name="tf_bert_for_sequence_classification_1")
    copy_config(tf2, config, num_labels=3)
    model = fastbert.BertForSequenceClassification.from_pretrained(str(tf2), attn_implementation="eager")
    with torch.no_grad():
        got = model.eval()(**inputs)
    cls_config = BertConfig.from_pretrained(tf2)
    want = hf_outputs(transformers, "BertForSequenceClassification", cls_config, cls_state, inputs)
    assert_same_outputs(got, want, ["logits"])

    qa_state = with_head(reference, "qa_outputs")
    fl = tmp_path / "flax"
    fl.mkdir()
    write_flax_msgpack(fl / "flax_model.msgpack", qa_state)
    copy_config(fl, config)
    model = fastbert.BertForQuestionAnswering.from_pretrained(str(fl), attn_implementation="eager")
    with torch.no_grad():
        got = model.eval()(**inputs)
    want = hf_outputs(transformers, "BertForQuestionAnswering", config, qa_state, inputs)
    assert_same_outputs(got, want, ["start_logits", "end_logits"])

    tf1 = tmp_path / "tf1"
    tf1.mkdir()
    tf = google_names(reference)
    slots = {f"{k}/adam_m": torch.zeros_like(v) for k, v in tf.items()}
    write_tf1_bundle(tf1 / "bert_model.ckpt", tf | slots | {"global_step": torch.tensor(5)}, num_shards=2)
    shutil.copyfile(GOOGLE / "bert_config.json", tf1 / "bert_config.json")
    model = fastbert.BertForMaskedLM.from_pretrained(str(tf1), attn_implementation="eager")
    assert torch.equal(
        model.cls.predictions.decoder.weight, reference["bert.embeddings.word_embeddings.weight"]
    )
    assert torch.equal(model.cls.predictions.bias, reference["cls.predictions.bias"])


def test_bad_files(tmp_path):
    h5 = copy_files(FIXTURES, tmp_path / "h5", ["config.json"])
    corrupt(FIXTURES / "tf_model.h5", h5 / "tf_model.h5", truncate=4000)
    with pytest.raises(OSError, match="tf_model.h5"):
        fastbert.BertForPreTraining.from_pretrained(str(h5))
    google = copy_files(GOOGLE, tmp_path / "tf1", [INDEX, "bert_config.json"])
    with pytest.raises(OSError, match=f"{SHARD}: data shard not found"):
        fastbert.BertForPreTraining.from_pretrained(str(google))
    big = copy_files(GOOGLE, tmp_path / "vocab", [INDEX, SHARD])
    (big / "bert_config.json").write_text(
        (GOOGLE / "bert_config.json").read_text().replace('"vocab_size": 99', '"vocab_size": 100')
    )
    with pytest.raises(RuntimeError, match="word_embeddings"):
        fastbert.BertForPreTraining.from_pretrained(str(big))


def test_google_checkpoint_file_given_directly(tmp_path):
    """``from_pretrained(".../bert_model.ckpt")`` (or its ``.index``), as ``fastbert convert`` takes it: the
    config is read beside the checkpoint (it said "no such path", or read the binary index as JSON)."""
    folder = copy_files(GOOGLE, tmp_path / "tf1", [INDEX, SHARD, "bert_config.json"])
    want = fastbert.BertForPreTraining.from_pretrained(folder, from_tf=True)
    for given in (folder / "bert_model.ckpt", folder / INDEX):
        got = fastbert.BertForPreTraining.from_pretrained(str(given), from_tf=True)
        for (name, a), (_, b) in zip(got.state_dict().items(), want.state_dict().items()):
            assert torch.equal(a, b), name


def test_checkpoint_file_given_directly_to_auto_classes(tmp_path):
    """The auto classes read the config beside a checkpoint file given directly, as the model classes do:
    they read ``bert_model.ckpt`` as a path that does not exist, and ``tf_model.h5`` /
    ``flax_model.msgpack`` / the ``.index`` file as config.json ("is not valid JSON")."""
    tf1 = copy_files(GOOGLE, tmp_path / "tf1", [INDEX, SHARD, "bert_config.json"])
    tf2 = copy_files(FIXTURES, tmp_path / "tf2", ["tf_model.h5", "config.json"])
    flax = copy_files(FIXTURES, tmp_path / "flax", ["flax_model.msgpack", "config.json"])
    want = fastbert.BertForPreTraining.from_pretrained(tf1, from_tf=True).state_dict()
    cases = [
        (tf1 / "bert_model.ckpt", {"from_tf": True}),
        (tf1 / INDEX, {"from_tf": True}),
        (tf2 / "tf_model.h5", {"from_tf": True}),
        (flax / "flax_model.msgpack", {"from_flax": True}),
    ]
    for given, kwargs in cases:
        model = fastbert.AutoModelForPreTraining.from_pretrained(str(given), **kwargs)
        assert type(model).__name__ == "BertForPreTraining"
        for name, value in model.state_dict().items():
            assert torch.equal(value, want[name]), (given, name)


def test_checkpoint_file_given_directly_with_a_subfolder(tmp_path):
    """A checkpoint file given directly is read as it is whatever the subfolder (as transformers reads a
    file path), and so is its config beside it: the config was looked for in ``<file's folder>/<subfolder>``
    ("has no config.json") while the weights ignored the subfolder, as ``fastbert convert`` does."""
    tf1 = copy_files(GOOGLE, tmp_path / "tf1", [INDEX, SHARD, "bert_config.json"])
    tf2 = copy_files(FIXTURES, tmp_path / "tf2", ["tf_model.h5", "config.json"])
    want = fastbert.BertForPreTraining.from_pretrained(tf1, from_tf=True).state_dict()
    for cls in (fastbert.BertForPreTraining, fastbert.AutoModelForPreTraining):
        for given in (tf1 / "bert_model.ckpt", tf2 / "tf_model.h5"):
            model = cls.from_pretrained(str(given), from_tf=True, subfolder="sub")
            assert type(model).__name__ == "BertForPreTraining"
            for name, value in model.state_dict().items():
                assert torch.equal(value, want[name]), (cls, given, name)


@pytest.mark.parametrize(
    "name, said",
    [
        ("tf_model.h5", "is a TensorFlow checkpoint file: load it with from_tf=True"),
        ("flax_model.msgpack", "is a Flax checkpoint file: load it with from_flax=True"),
        ("google_ckpt/bert_model.ckpt", "is a TensorFlow 1 checkpoint .*: load it with from_tf=True"),
        ("google_ckpt/bert_model.ckpt.index", "is a TensorFlow checkpoint file: load it with from_tf=True"),
    ],
)
def test_a_checkpoint_file_without_its_flag_names_the_flag(name, said):
    """A TF / Flax checkpoint file given without from_tf / from_flax: the error names the flag that loads it
    (transformers 4: "please set from_tf=True"); it said "no such path" for a TF1 prefix, or "is a file; pass
    the folder that holds it", which the same file with the flag does not need."""
    import fastbert

    with pytest.raises(OSError, match=said):
        fastbert.BertForPreTraining.from_pretrained(os.path.join(FIXTURES, name))


@pytest.mark.parametrize(
    "names, kwargs, said",
    [
        (["flax_model.msgpack"], {"from_tf": True}, "but holds flax_model.msgpack: pass from_flax=True"),
        (["tf_model.h5"], {"from_flax": True}, "but holds tf_model.h5: pass from_tf=True"),
        ([INDEX, SHARD], {"from_flax": True}, f"but holds {INDEX}: pass from_tf=True"),
    ],
)
def test_the_other_flag_is_named_when_the_folder_holds_the_other_kind(tmp_path, names, kwargs, said):
    """from_tf=True on a folder holding only a Flax checkpoint (or from_flax=True on a TF one) said "holds no
    model weights: expected ..., flax_model.msgpack", of a folder holding flax_model.msgpack; transformers 4
    names the flag ("there is a file for Flax weights. Use `from_flax=True`")."""
    src = GOOGLE if INDEX in names else FIXTURES
    folder = copy_files(src, tmp_path / "m", names)
    shutil.copyfile(FIXTURES / "config.json", folder / "config.json")
    with pytest.raises(OSError, match=re.escape(f"{folder} holds no ") + ".*" + re.escape(said)):
        fastbert.BertModel.from_pretrained(str(folder), **kwargs)
    fastbert.BertModel.from_pretrained(str(folder), **{k: False for k in kwargs})  # loads without the flag


def test_the_other_flag_is_named_for_a_cached_hub_id(tmp_path):
    """The same of a hub id whose cache holds the other kind (local_files_only: nothing is downloaded): it said
    "its weights are not in the local cache" of a cache holding tf_model.h5."""
    repo = tmp_path / "models--someone--tf-bert"
    snapshot = repo / "snapshots" / ("0" * 40)
    copy_files(FIXTURES, snapshot, ["tf_model.h5", "config.json"])
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0" * 40)
    hub_kwargs = {"cache_dir": str(tmp_path), "local_files_only": True}
    fastbert.BertModel.from_pretrained("someone/tf-bert", from_tf=True, **hub_kwargs)  # cached: loads
    with pytest.raises(OSError, match="but holds tf_model.h5 in the local cache: pass from_tf=True"):
        fastbert.BertModel.from_pretrained("someone/tf-bert", from_flax=True, **hub_kwargs)


@pytest.mark.parametrize("name, flag", [("tf_model.h5", "from_tf"), ("flax_model.msgpack", "from_flax")])
def test_use_safetensors_true_does_not_read_a_tf_or_flax_checkpoint(tmp_path, name, flag):
    """use_safetensors=True on a folder holding only a TF / Flax checkpoint: transformers reads safetensors
    only ("Error no file named model.safetensors"); it loaded tf_model.h5 / flax_model.msgpack instead. The
    error names the flag that loads it; with the flag, as transformers 4, the flag wins."""
    folder = copy_files(FIXTURES, tmp_path / "m", [name, "config.json"])
    with pytest.raises(
        OSError, match=re.escape(f"but holds {name}: pass {flag}=True (or use_safetensors=None)")
    ):
        fastbert.BertModel.from_pretrained(str(folder), use_safetensors=True)
    fastbert.BertModel.from_pretrained(str(folder), use_safetensors=True, **{flag: True})
    fastbert.BertModel.from_pretrained(str(folder))
