"""Hub ids offline or unreachable, and local paths that do not exist (issue 25 round 2): ``fastbert convert``
and ``from_pretrained`` say so in one line at once, without huggingface_hub's retries (five per file, about
23 s each) and without blaming a missing ``tf_model.h5``; a path that looks local is never sent to the hub.

Never the real network: HF_HOME is a temporary folder, and the hub is either off (``HF_HUB_OFFLINE=1``) or
an endpoint on 127.0.0.1 where nothing listens (connection refused at once).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import fastbert
from fastbert import hub
from fastbert.hub import HubOptions, looks_local
from fastbert.legacy import convert_checkpoint

REPO = str(Path(__file__).resolve().parents[2])


def _closed_port() -> int:
    """A port on 127.0.0.1 where nothing listens (bound, then closed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(tmp_path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TRANSFORMERS_OFFLINE"))}
    env.update(PYTHONPATH=REPO, HF_HOME=str(tmp_path / "hf-home"), **extra)
    return env


def _fastbert(tmp_path, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "fastbert", *args],
        capture_output=True,
        text=True,
        env=_env(tmp_path, **env),
        timeout=300,
    )


def _one_line(p: subprocess.CompletedProcess, *needles: str) -> str:
    lines = [line for line in p.stderr.splitlines() if line.strip()]
    assert p.returncode == 2, p.stderr
    assert len(lines) == 1 and "Traceback" not in p.stderr and "Retry" not in p.stderr, p.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize(
    "how, env",
    [
        ("offline", {"HF_HUB_OFFLINE": "1"}),
        ("unreachable", {"HF_ENDPOINT": "http://127.0.0.1:{port}"}),
    ],
)
def test_convert_a_hub_id_offline_or_unreachable_is_one_line(tmp_path, how, env):
    env = {k: v.format(port=_closed_port()) for k, v in env.items()}
    p = _fastbert(tmp_path, "convert", "google-bert/bert-base-uncased", str(tmp_path / "out"), **env)
    line = _one_line(p, "'google-bert/bert-base-uncased' is not a local folder", "in the local cache")
    assert ("HF_HUB_OFFLINE is set" if how == "offline" else "cannot be reached: Connection refused") in line
    assert "tf_model.h5" not in line and not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "src", ["/no/such/checkpoint", "./no/such", "no/such/folder", "~/no-such-fastbert-model"]
)
def test_convert_a_missing_local_path_is_never_sent_to_the_hub(tmp_path, monkeypatch, src):
    def no_hub(*args, **kwargs):
        raise AssertionError(f"{src} was sent to the hub")

    monkeypatch.setattr(hub, "hub_unavailable", no_hub)
    with pytest.raises(OSError, match=r"is not a local folder or file \(no such path\)") as e:
        convert_checkpoint(src, tmp_path / "out")
    assert src in str(e.value) and "tf_model.h5" not in str(e.value)


def test_convert_a_missing_local_path_at_the_command_line(tmp_path):
    p = _fastbert(
        tmp_path, "convert", str(tmp_path / "no" / "such"), str(tmp_path / "out"), HF_HUB_OFFLINE="0"
    )
    _one_line(p, "is not a local folder or file")


@pytest.mark.parametrize(
    "path, local",
    [
        ("/abs/path", True),
        ("./rel", True),
        ("../up", True),
        ("~/home-model", True),
        ("a/b/c", True),
        ("bert-base-uncased", False),
        ("google-bert/bert-base-uncased", False),
    ],
)
def test_looks_local(path, local):
    assert looks_local(path) is local


def test_looks_local_when_it_exists(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "owner" / "name").mkdir(parents=True)
    assert looks_local("owner/name")


def test_from_pretrained_offline_is_fast_and_names_the_reason(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(OSError, match=r"'someone/some-bert' is not a local folder.*HF_HUB_OFFLINE is set"):
        fastbert.BertModel.from_pretrained("someone/some-bert", cache_dir=str(tmp_path / "cache"))
    with pytest.raises(OSError, match="is not a local folder or file"):
        fastbert.BertModel.from_pretrained(str(tmp_path / "no" / "such" / "model"))


def test_from_pretrained_unreachable_hub_fails_fast_and_a_cached_model_still_loads(tmp_path):
    """An endpoint where nothing listens: a hub id that is not cached is one OSError saying the hub cannot be
    reached (no retries); one that is in the cache loads from it."""
    torch.manual_seed(0)
    cfg = fastbert.BertConfig(
        vocab_size=20, hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=16
    )
    snapshot = tmp_path / "hf-home" / "hub" / "models--someone--cached-bert" / "snapshots" / ("0" * 40)
    fastbert.BertModel(cfg).save_pretrained(str(snapshot))
    refs = snapshot.parents[1] / "refs"
    refs.mkdir()
    (refs / "main").write_text("0" * 40)
    code = (
        "import fastbert\n"
        "try:\n"
        "    fastbert.BertModel.from_pretrained('someone/not-cached-bert')\n"
        "except OSError as e:\n"
        "    print('ERROR', e)\n"
        "m = fastbert.BertModel.from_pretrained('someone/cached-bert')\n"
        "print('LOADED', m.config.hidden_size)\n"
    )
    p = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=_env(tmp_path, HF_ENDPOINT=f"http://127.0.0.1:{_closed_port()}"),
        timeout=300,
    )
    assert p.returncode == 0, p.stderr
    assert "Retry" not in p.stderr, p.stderr
    error = next(line for line in p.stdout.splitlines() if line.startswith("ERROR"))
    assert "'someone/not-cached-bert' is not a local folder" in error and "cannot be reached" in error
    assert "LOADED 8" in p.stdout


def test_resolve_file_reason_local_files_only(tmp_path):
    with pytest.raises(OSError, match=r"not in the local cache \(local_files_only is set\)"):
        hub.resolve_file(
            "someone/other-bert", "config.json", HubOptions(local_files_only=True, cache_dir=str(tmp_path))
        )
