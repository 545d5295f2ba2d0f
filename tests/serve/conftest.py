"""Fixtures of the ``fastbert serve`` tests (helpers in serve_helpers.py)."""

from __future__ import annotations

import json
import shutil

import pytest
from serve_helpers import build_checkpoints, serving


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    return build_checkpoints(tmp_path_factory.mktemp("serve-models"))


@pytest.fixture(scope="module")
def base_server(tiny):
    """The tiny base model served as the folder says (no pooling config: the first token, as TEI)."""
    with serving(model=tiny["base"]) as srv:
        yield srv


@pytest.fixture(scope="module")
def mean_base_server(tiny):
    """The tiny base model served with mean pooling."""
    with serving(model=tiny["base"], pooling="mean") as srv:
        yield srv


@pytest.fixture(scope="session")
def prompt_model(tiny, tmp_path_factory):
    """The tiny base model with sentence-transformers prompts ("query" the config's default)."""
    path = tmp_path_factory.mktemp("prompted") / "model"
    shutil.copytree(tiny["base"], path)
    (path / "config_sentence_transformers.json").write_text(
        json.dumps({"prompts": {"query": "where is ", "passage": ""}, "default_prompt_name": "query"})
    )
    return str(path)


@pytest.fixture(scope="session")
def minilm_server():
    """The embedded MiniLM (the default model), served once for the session."""
    with serving() as running:
        yield running


@pytest.fixture(scope="session")
def st_minilm():
    st = pytest.importorskip("sentence_transformers")
    from fastbert.hub import embedded_model_path

    return st.SentenceTransformer(embedded_model_path(), device="cpu")
