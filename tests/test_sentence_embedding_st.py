"""The ``sentence-embedding`` pipeline on sentence-transformers folders: what ``SentenceTransformer.encode``
reads from the folder, the pipeline follows (judged by ``fastbert.core.tolerances`` against the folder run
by sentence-transformers in float64)."""

import json

import pytest
import torch
from model_helpers import minilm_folder, perturb_norms_and_biases

import fastbert
from fastbert.core.tolerances import assert_close

transformers = pytest.importorskip("transformers")
st = pytest.importorskip("sentence_transformers")

try:  # sentence-transformers 6
    from sentence_transformers.base.modules import Transformer
    from sentence_transformers.sentence_transformer.modules import Pooling
except ImportError:  # sentence-transformers 5
    from sentence_transformers.models import Pooling, Transformer

TEXTS = ["Paris IS the Capital of France.", "hello", "", "BERLIN"]


def test_do_lower_case_of_sentence_bert_config(tmp_path):
    """``do_lower_case: true`` in sentence_bert_config.json (sentence-transformers < 6 wrote it; 6 still reads
    it): sentence-transformers lower-cases the texts before a cased tokenizer; the pipeline did not (other
    tokens, other vectors)."""
    src = tmp_path / "bert"
    tokenizer = transformers.AutoTokenizer.from_pretrained(minilm_folder(weights=False))
    config = transformers.BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=37,
        max_position_embeddings=64,
    )
    torch.manual_seed(5)
    perturb_norms_and_biases(transformers.BertModel(config).eval()).save_pretrained(src)
    tokenizer.save_pretrained(src)
    tok = json.loads((src / "tokenizer.json").read_text())  # a cased WordPiece tokenizer
    tok["normalizer"]["lowercase"] = False
    (src / "tokenizer.json").write_text(json.dumps(tok))
    tok_config = json.loads((src / "tokenizer_config.json").read_text())
    (src / "tokenizer_config.json").write_text(json.dumps({**tok_config, "do_lower_case": False}))

    folder = tmp_path / "st"
    model = st.SentenceTransformer(modules=[Transformer(str(src)), Pooling(32, "mean")], device="cpu")
    model.save(str(folder))
    st_config = json.loads((folder / "sentence_bert_config.json").read_text())
    (folder / "sentence_bert_config.json").write_text(json.dumps({**st_config, "do_lower_case": True}))

    plain = st.SentenceTransformer(str(folder), device="cpu")
    theirs = plain.encode(TEXTS, convert_to_tensor=True)
    ref = plain.to(torch.float64).encode(TEXTS, convert_to_tensor=True)
    ours = fastbert.pipeline("sentence-embedding", model=str(folder))(TEXTS, return_tensors=True)
    assert_close(ours, theirs, ref, torch.float32, what="do_lower_case")
