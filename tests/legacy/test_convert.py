"""``convert_checkpoint`` and ``fastbert convert``: legacy checkpoints into folders transformers 5 loads."""

from __future__ import annotations

import os
import shutil
import sys

import pytest
import torch
from legacy_helpers import (
    EXTRA_HINT,
    FIXTURES,
    GOOGLE,
    INDEX,
    assert_converted_like,
    assert_pretraining_outputs,
    assert_same_weights,
    convert,
    copy_config,
    with_head,
)
from legacy_writers import google_names, write_tf1_bundle, write_tf2_h5
from safetensors.torch import load_file

from fastbert import legacy
from fastbert.cli import main
from fastbert.config import BertConfig
from fastbert.hub import HubOptions

FORMATS = {
    "tf2": (FIXTURES, {}),
    "flax": (FIXTURES, {"from_flax": True}),
    "tf1": (GOOGLE, {}),
}


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_convert_loads_in_transformers(fmt, tmp_path, reference, inputs, expected, transformers):
    folder, kwargs = FORMATS[fmt]
    dst = tmp_path / "converted"
    assert convert(folder, dst, **kwargs) == "BertForPreTraining"
    assert sorted(os.listdir(dst)) == ["config.json", "model.safetensors"]
    assert_same_weights(load_file(dst / "model.safetensors"), reference)
    model = transformers.BertForPreTraining.from_pretrained(dst, attn_implementation="eager").eval()
    assert model.config.architectures == ["BertForPreTraining"]
    with torch.no_grad():
        out = model(**inputs, output_hidden_states=True)
    assert_pretraining_outputs(out, expected)


def test_cli_convert(tmp_path, capsys):
    dst = tmp_path / "out"
    assert main(["convert", str(GOOGLE), str(dst)]) == 0
    assert (dst / "model.safetensors").is_file() and (dst / "config.json").is_file()
    assert main(["convert", str(GOOGLE), str(dst)]) == 2  # exists: refuses without --overwrite
    assert "--overwrite" in capsys.readouterr().err
    assert main(["convert", "--overwrite", str(GOOGLE), str(dst)]) == 0
    assert main(["convert", "--from-flax", str(GOOGLE), str(tmp_path / "x")]) == 2
    assert "holds no Flax checkpoint" in capsys.readouterr().err
    assert main(["convert", str(tmp_path / "does-not-exist"), str(tmp_path / "y")]) == 2


def test_cli_convert_without_the_extra(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "google_crc32c", None)
    assert main(["convert", str(GOOGLE), str(tmp_path / "out")]) == 2
    assert EXTRA_HINT.replace("\\", "") in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_shapes_that_do_not_fit_the_config(google_copy, tmp_path):
    cfg = (google_copy / "bert_config.json").read_text().replace('"vocab_size": 99', '"vocab_size": 100')
    (google_copy / "bert_config.json").write_text(cfg)
    with pytest.raises(ValueError, match=rf"{INDEX}: bert/embeddings/word_embeddings: shape \[99, 32\]"):
        convert(google_copy, tmp_path / "out")
    assert not (tmp_path / "out" / "model.safetensors").exists()


def test_partial_checkpoint_refused_by_convert(tmp_path, reference, config):
    partial = {k: v for k, v in reference.items() if "layer.1." not in k}
    write_tf2_h5(tmp_path / "tf_model.h5", partial, model_name="tf_bert_for_pre_training")
    copy_config(tmp_path, config)
    with pytest.raises(ValueError, match="lacks weights .*layer.1"):
        convert(tmp_path, tmp_path / "out")


def test_convert_offline_hub_options(tmp_path):
    dst = tmp_path / "out"
    arch = legacy.convert_checkpoint(
        str(GOOGLE), str(dst), hub=HubOptions(local_files_only=True), log=lambda _: None
    )
    assert arch == "BertForPreTraining" and (dst / "model.safetensors").is_file()


def test_interrupted_convert_leaves_no_partial_output(google_copy, tmp_path, monkeypatch):
    vocab = "".join(f"tok{i}\n" for i in range(99))
    (google_copy / "vocab.txt").write_text(vocab)
    dst = tmp_path / "out"

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as m:  # stopped before config.json is written: no weights without it
        m.setattr(BertConfig, "save_pretrained", interrupted)
        with pytest.raises(KeyboardInterrupt):
            convert(google_copy, dst)
    assert not (dst / "model.safetensors").exists()

    def half_copy(src, target):
        with open(target, "w") as f:
            f.write(vocab[:10])
        raise KeyboardInterrupt

    with monkeypatch.context() as m:  # stopped while copying vocab.txt: no half file the next run keeps
        m.setattr(shutil, "copyfile", half_copy)
        with pytest.raises(KeyboardInterrupt):
            convert(google_copy, dst)
    assert not (dst / "vocab.txt").exists() and not (dst / "model.safetensors").exists()
    assert not [p for p in os.listdir(dst) if p.endswith(".tmp")]

    assert convert(google_copy, dst) == "BertForPreTraining"  # the rerun needs no --overwrite
    assert (dst / "vocab.txt").read_text() == vocab


def test_convert_drops_what_the_class_does_not_hold(tmp_path, reference, config, inputs, transformers):
    """run_squad.py saves BertModel's pooler beside ``cls/squad``: BertForQuestionAnswering has no pooler, so
    the converted folder holds none (transformers would report it unexpected), and the log says so."""
    state = with_head(reference, "qa_outputs") | {k: v for k, v in reference.items() if "pooler" in k}
    (tmp_path / "squad").mkdir()
    write_tf1_bundle(tmp_path / "squad" / "model.ckpt", google_names(state))
    shutil.copyfile(GOOGLE / "bert_config.json", tmp_path / "squad" / "bert_config.json")
    logged = []
    dst = tmp_path / "out"
    assert legacy.convert_checkpoint(tmp_path / "squad", dst, log=logged.append) == "BertForQuestionAnswering"
    assert not [k for k in load_file(dst / "model.safetensors") if "pooler" in k]
    assert sum("skipping" in line and "bert/pooler/dense/" in line for line in logged) == 2
    _, info = transformers.BertForQuestionAnswering.from_pretrained(dst, output_loading_info=True)
    assert not info["unexpected_keys"] and not info["missing_keys"]
    qa = {k: v for k, v in state.items() if "pooler" not in k}
    assert_converted_like(transformers, dst, "BertForQuestionAnswering", config, qa, inputs, ["start_logits"])


def test_overwrite_replaces_the_tokenizer_files_too(google_copy, tmp_path):
    """--overwrite converting another checkpoint into a folder replaces its tokenizer files with the new
    source's (the earlier model's vocab.txt was kept beside the new weights), and says which it keeps."""
    dst = tmp_path / "out"
    (google_copy / "vocab.txt").write_text("".join(f"old{i}\n" for i in range(99)))
    convert(google_copy, dst)
    new = "".join(f"new{i}\n" for i in range(99))
    (google_copy / "vocab.txt").write_text(new)
    (dst / "tokenizer.json").write_text("{}")  # a file the source lacks: kept, and said so
    logged = []
    legacy.convert_checkpoint(str(google_copy), str(dst), overwrite=True, log=logged.append)
    assert (dst / "vocab.txt").read_text() == new
    assert any("kept" in line and "tokenizer.json" in line for line in logged), logged


def test_interrupted_overwrite_leaves_no_earlier_weights_beside_the_new_files(
    google_copy, tmp_path, monkeypatch
):
    """--overwrite stopped before the new weights are written: the folder held the earlier model.safetensors
    beside the new config.json and vocab.txt, which load without a word (another model's weights with this
    vocabulary). The earlier weights are gone once the new files are written: the folder says it holds no
    weights, and a rerun needs no --overwrite."""
    import safetensors.torch

    dst = tmp_path / "out"
    (google_copy / "vocab.txt").write_text("".join(f"old{i}\n" for i in range(99)))
    convert(google_copy, dst)
    new = "".join(f"new{i}\n" for i in range(99))
    (google_copy / "vocab.txt").write_text(new)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(safetensors.torch, "save_file", interrupted)
        with pytest.raises(KeyboardInterrupt):
            convert(google_copy, dst, overwrite=True)
    assert (dst / "vocab.txt").read_text() == new
    assert not (dst / "model.safetensors").exists()
    assert convert(google_copy, dst) == "BertForPreTraining"


@pytest.mark.parametrize(
    "fields", [{"model_type": "roberta"}, {"model_type": None, "architectures": ["DistilBertForMaskedLM"]}]
)
def test_a_checkpoint_of_another_family_is_refused_before_it_is_read(tmp_path, monkeypatch, fields):
    """convert writes BERT's classes only. A RoBERTa config said "describes a 'roberta' model, not a BERT
    model (fastbert.AutoConfig picks the class ...)", after the whole checkpoint was read; one without
    model_type whose architectures name another family was read as BERT ("lacks weights of a BertModel")."""
    import json

    folder = tmp_path / "src"
    folder.mkdir()
    shutil.copyfile(FIXTURES / "tf_model.h5", folder / "tf_model.h5")
    data = json.loads((FIXTURES / "config.json").read_text())
    data.update(fields)
    if data["model_type"] is None:
        del data["model_type"]
    (folder / "config.json").write_text(json.dumps(data))

    def not_read(*args, **kwargs):
        raise AssertionError("the checkpoint was read")

    monkeypatch.setattr(legacy.convert, "load_legacy_checkpoint", not_read)
    with pytest.raises(
        ValueError, match="converts BERT checkpoints only; load this one with fastbert.AutoModel"
    ):
        convert(folder, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_google_checkpoint_under_a_path_naming_another_family_converts(tmp_path):
    """Google's bert_config.json has no model_type: a folder path that holds "electra" is not read as an
    ELECTRA checkpoint by convert (transformers 4's name rule is not applied to it)."""
    src = tmp_path / "electra_vs_bert" / "google"
    shutil.copytree(GOOGLE, src)
    assert convert(src, tmp_path / "out") == "BertForPreTraining"
