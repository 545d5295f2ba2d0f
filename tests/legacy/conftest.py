"""Fixtures of the legacy-checkpoint tests: the tiny BertForPreTraining of fixtures/legacy-bert (see its
LAYOUT.md) as weights, config, inputs and expected outputs."""

from __future__ import annotations

import importlib
import shutil
from pathlib import Path

import pytest
import torch
from legacy_helpers import FIXTURES, GOOGLE
from safetensors.torch import load_file

from fastbert.config import BertConfig


@pytest.fixture(scope="session")
def reference() -> dict[str, torch.Tensor]:
    """The PyTorch weights every format of the fixture holds."""
    return load_file(FIXTURES / "model.safetensors")


@pytest.fixture(scope="session")
def config() -> BertConfig:
    return BertConfig.from_pretrained(FIXTURES)


@pytest.fixture(scope="session")
def inputs() -> dict[str, torch.Tensor]:
    return load_file(FIXTURES / "inputs.safetensors")


@pytest.fixture(scope="session")
def expected() -> dict[str, torch.Tensor]:
    """PyTorch fp32 outputs of the fixture model on ``inputs``."""
    return load_file(FIXTURES / "expected_outputs.safetensors")


@pytest.fixture(scope="session")
def transformers():
    """transformers, a test dependency: a missing one fails the tests that need it, never skips them."""
    return importlib.import_module("transformers")


@pytest.fixture
def google_copy(tmp_path) -> Path:
    """A writable copy of the Google TF1 checkpoint folder."""
    folder = tmp_path / "google"
    shutil.copytree(GOOGLE, folder)
    for p in folder.iterdir():
        p.chmod(0o644)
    return folder
