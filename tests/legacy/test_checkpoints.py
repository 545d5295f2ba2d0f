"""Finding a legacy checkpoint (folder, hub id, file; order of preference) and reading it by format."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from legacy_helpers import EXTRA_HINT, FIXTURES, GOOGLE, assert_same_weights, copy_files
from legacy_writers import google_names, keras_path, write_flax_msgpack, write_tf1_bundle, write_tf2_h5

from fastbert import legacy
from fastbert.hub import HubOptions

FORMATS = {
    "tf2": (FIXTURES, {}),
    "flax": (FIXTURES, {"from_flax": True}),
    "tf1": (GOOGLE, {}),
}


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_fixture_weights_equal_pytorch(fmt, reference):
    folder, kwargs = FORMATS[fmt]
    found = legacy.find_legacy_checkpoint(str(folder), **kwargs)
    assert found is not None and found[0] == fmt
    state = legacy.load_legacy_checkpoint(*found)
    assert_same_weights(state, reference)
    assert state.kind == fmt
    assert "cls.predictions.decoder.weight" not in state
    assert all(k.startswith(("bert.", "cls.")) for k in state)


def test_preference_order(tmp_path):
    everything = copy_files(FIXTURES, tmp_path / "all", ["tf_model.h5", "flax_model.msgpack", "config.json"])
    copy_files(GOOGLE, everything, ["bert_model.ckpt.index", "bert_model.ckpt.data-00000-of-00001"])
    kind, files = legacy.find_legacy_checkpoint(str(everything))
    assert kind == "tf1" and [os.path.basename(f) for f in files] == [
        "bert_model.ckpt.index",
        "bert_model.ckpt.data-00000-of-00001",
    ]
    assert legacy.find_legacy_checkpoint(str(everything), from_tf=True)[0] == "tf1"
    assert legacy.find_legacy_checkpoint(str(everything), from_flax=True)[0] == "flax"

    no_tf1 = copy_files(FIXTURES, tmp_path / "h5_and_msgpack", ["tf_model.h5", "flax_model.msgpack"])
    assert legacy.find_legacy_checkpoint(str(no_tf1))[0] == "tf2"
    flax_only = copy_files(FIXTURES, tmp_path / "flax_only", ["flax_model.msgpack"])
    assert legacy.find_legacy_checkpoint(str(flax_only))[0] == "flax"
    assert legacy.find_legacy_checkpoint(str(flax_only), from_tf=True) is None
    empty = tmp_path / "empty"
    empty.mkdir()
    assert legacy.find_legacy_checkpoint(str(empty)) is None


def test_files_given_directly():
    assert legacy.find_legacy_checkpoint(str(FIXTURES / "tf_model.h5")) == (
        "tf2",
        [str(FIXTURES / "tf_model.h5")],
    )
    assert legacy.find_legacy_checkpoint(str(FIXTURES / "flax_model.msgpack"))[0] == "flax"
    assert legacy.find_legacy_checkpoint(str(FIXTURES / "flax_model.msgpack"), from_tf=True) is None
    for given in (GOOGLE / "bert_model.ckpt", GOOGLE / "bert_model.ckpt.index"):
        kind, files = legacy.find_legacy_checkpoint(str(given))
        assert kind == "tf1" and files[0] == str(GOOGLE / "bert_model.ckpt.index") and len(files) == 2


def test_fine_tuning_output_names(tmp_path, reference):
    """``model.ckpt-<step>.index`` (run_classifier's output): the latest step is chosen."""
    tf = google_names(reference)
    write_tf1_bundle(tmp_path / "model.ckpt-100", {k: torch.zeros_like(v) for k, v in tf.items()})
    write_tf1_bundle(tmp_path / "model.ckpt-2000", tf)
    kind, files = legacy.find_legacy_checkpoint(str(tmp_path))
    assert kind == "tf1" and os.path.basename(files[0]) == "model.ckpt-2000.index"
    assert_same_weights(legacy.load_legacy_checkpoint(kind, files), reference)


def _split(state: dict[str, torch.Tensor]) -> tuple[dict, dict]:
    keys = sorted(state)
    return {k: state[k] for k in keys[::2]}, {k: state[k] for k in keys[1::2]}


def test_sharded_h5_and_msgpack(tmp_path, reference):
    """``tf_model.h5.index.json`` / ``flax_model.msgpack.index.json`` with their shards."""
    cases = {
        "tf2": (
            "tf_model-{}-of-00002.h5",
            "tf_model.h5.index.json",
            lambda path, part: write_tf2_h5(path, part, sharded_layout=True),
            lambda k: keras_path(k)[1],
        ),
        "flax": (
            "flax_model-{}-of-00002.msgpack",
            "flax_model.msgpack.index.json",
            write_flax_msgpack,
            lambda k: k.replace(".", "/"),
        ),
    }
    for kind, (shard_name, index_name, write, weight_name) in cases.items():
        folder = tmp_path / kind
        folder.mkdir()
        weight_map = {}
        for i, part in enumerate(_split(reference)):
            name = shard_name.format(f"{i + 1:05d}")
            write(folder / name, part)
            weight_map |= {weight_name(k): name for k in part}
        (folder / index_name).write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
        found = legacy.find_legacy_checkpoint(str(folder))
        assert found[0] == kind and len(found[1]) == 2
        assert_same_weights(legacy.load_legacy_checkpoint(*found), reference)


def test_hub_resolution(tmp_path, monkeypatch, reference):
    """A hub id: the listing decides, and every file (TF1 shards included) is fetched through resolve_file
    with the one HubOptions value."""
    import fastbert.hub as hub

    repo = tmp_path / "hub" / "google" / "bert-tiny"
    repo.mkdir(parents=True)
    write_tf1_bundle(
        repo / "bert_model.ckpt", google_names(reference) | {"global_step": torch.tensor(1)}, num_shards=2
    )
    shutil.copyfile(FIXTURES / "flax_model.msgpack", repo / "flax_model.msgpack")
    options = HubOptions(revision="v1", token="secret")
    fetched = []

    def fake_list(path_or_id, hub_options):
        assert path_or_id == "google/bert-tiny" and hub_options == options
        return sorted(os.listdir(repo))

    def fake_resolve(path_or_id, filename, *, hub, required=True):
        assert path_or_id == "google/bert-tiny" and hub == options
        fetched.append(filename)
        if (repo / filename).is_file():
            return str(repo / filename)
        if required:
            raise OSError(f"{path_or_id} has no file named {filename}")
        return None

    monkeypatch.setattr(hub, "list_files", fake_list)
    monkeypatch.setattr(hub, "resolve_file", fake_resolve)
    kind, files = legacy.find_legacy_checkpoint("google/bert-tiny", hub=options)
    assert kind == "tf1" and fetched == [
        "bert_model.ckpt.index",
        "bert_model.ckpt.data-00000-of-00002",
        "bert_model.ckpt.data-00001-of-00002",
    ]
    assert_same_weights(legacy.load_legacy_checkpoint(kind, files), reference)
    assert legacy.find_legacy_checkpoint("google/bert-tiny", hub=options, from_flax=True)[0] == "flax"

    (repo / "bert_model.ckpt.data-00001-of-00002").unlink()
    with pytest.raises(OSError, match="data-00001-of-00002"):
        legacy.find_legacy_checkpoint("google/bert-tiny", hub=options)

    # Offline (no listing): the known names are tried in order.
    monkeypatch.setattr(hub, "list_files", lambda *a, **k: None)
    (repo / "bert_model.ckpt.index").unlink()
    assert legacy.find_legacy_checkpoint("google/bert-tiny", hub=options)[0] == "flax"


@pytest.mark.parametrize("subfolder", ["", "sub"])
def test_fine_tuning_output_in_the_offline_cache(tmp_path, reference, subfolder):
    """A hub id's cached ``model.ckpt-<step>.index`` is found without the hub's listing (local_files_only), as
    a local folder's: only ``model.ckpt.index`` and ``bert_model.ckpt.index`` were tried ("no checkpoint")."""
    tf = google_names(reference)
    repo = tmp_path / "models--someone--fine-tuned"
    snapshot = repo / "snapshots" / ("0" * 40) / subfolder
    snapshot.mkdir(parents=True)
    write_tf1_bundle(snapshot / "model.ckpt-100", {k: torch.zeros_like(v) for k, v in tf.items()})
    write_tf1_bundle(snapshot / "model.ckpt-2000", tf)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0" * 40)
    options = HubOptions(cache_dir=str(tmp_path), local_files_only=True, subfolder=subfolder)
    kind, files = legacy.find_legacy_checkpoint("someone/fine-tuned", hub=options)
    assert kind == "tf1" and os.path.basename(files[0]) == "model.ckpt-2000.index"
    assert_same_weights(legacy.load_legacy_checkpoint(kind, files), reference)


def test_hub_options_subfolder(tmp_path):
    """The hub options travel as one value: a subfolder is where the checkpoint is looked for."""
    folder = copy_files(FIXTURES, tmp_path / "sub", ["tf_model.h5"])
    found = legacy.find_legacy_checkpoint(str(tmp_path), hub=HubOptions(subfolder="sub"))
    assert found == ("tf2", [str(folder / "tf_model.h5")])
    assert legacy.find_legacy_checkpoint(str(tmp_path)) is None
    with pytest.raises(TypeError, match="revision"):
        legacy.find_legacy_checkpoint(str(tmp_path), revision="v1")  # one HubOptions, not five keywords


def test_unknown_kind_and_no_files():
    with pytest.raises(ValueError, match="'tf3'"):
        legacy.load_legacy_checkpoint("tf3", [str(FIXTURES / "tf_model.h5")])
    with pytest.raises(ValueError, match="no files"):
        legacy.load_legacy_checkpoint("tf2", [])


def test_missing_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "h5py", None)
    monkeypatch.setitem(sys.modules, "msgpack", None)
    # a command PyPI can answer (the package, or the checkout's extra), never the distribution's name
    with pytest.raises(ImportError, match=f"pip install h5py {EXTRA_HINT}"):
        legacy.load_legacy_checkpoint("tf2", [str(FIXTURES / "tf_model.h5")])
    with pytest.raises(ImportError, match=f"pip install msgpack {EXTRA_HINT}"):
        legacy.load_legacy_checkpoint("flax", [str(FIXTURES / "flax_model.msgpack")])
    # TF1 checkpoints need neither
    assert len(legacy.load_legacy_checkpoint(*legacy.find_legacy_checkpoint(str(GOOGLE)))) == 46


def test_import_without_transformers():
    code = (
        "import sys; sys.modules['transformers'] = None; sys.modules['tensorflow'] = None; sys.modules['jax'] = None\n"
        "from fastbert import legacy\n"
        f"sd = legacy.load_legacy_checkpoint(*legacy.find_legacy_checkpoint({str(GOOGLE)!r}))\n"
        "assert len(sd) == 46\n"
    )
    root = Path(__file__).parents[2]
    env = dict(os.environ, PYTHONPATH=str(root))
    subprocess.run([sys.executable, "-c", code], check=True, cwd=root, env=env)
