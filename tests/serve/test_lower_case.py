"""``do_lower_case`` of a sentence-transformers folder's sentence_bert_config.json: ``fastbert serve`` embeds
what ``SentenceTransformer(folder).encode`` embeds (sentence-transformers lower-cases each text, its
prompt included, before the tokenizer's own normalizer), as fastbert's pipeline, ``fastbert run`` and
``fastbert embed`` do. TEI ignores the flag; the server did too, so the same folder gave other vectors from
``fastbert serve`` than from ``fastbert embed``. Tiny random checkpoints on 127.0.0.1 only."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from serve_helpers import serving

TEXTS = ["The Cat sat", "A BLUE sky over the Car", "DOG"]


@pytest.fixture(scope="module")
def lower_case_folder(tiny, tmp_path_factory):
    """The tiny base model with a cased tokenizer, as a sentence-transformers folder (mean pooling) whose
    sentence_bert_config.json says do_lower_case (the vocabulary is lower-case: cased words are [UNK])."""
    folder = tmp_path_factory.mktemp("lower") / "model"
    shutil.copytree(tiny["base"], folder)
    tok = json.loads((folder / "tokenizer.json").read_text())
    tok["normalizer"]["lowercase"] = False
    (folder / "tokenizer.json").write_text(json.dumps(tok))
    config = json.loads((folder / "tokenizer_config.json").read_text())
    config["do_lower_case"] = False
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
    ]
    (folder / "modules.json").write_text(json.dumps(modules))
    (folder / "1_Pooling").mkdir()
    (folder / "1_Pooling" / "config.json").write_text(
        json.dumps({"word_embedding_dimension": 32, "pooling_mode_mean_tokens": True})
    )
    (folder / "sentence_bert_config.json").write_text(
        json.dumps({"max_seq_length": 64, "do_lower_case": True})
    )
    (folder / "config_sentence_transformers.json").write_text(json.dumps({"prompts": {"query": "Where Is "}}))
    return str(folder)


def test_serve_lower_cases_as_sentence_transformers(lower_case_folder):
    st = pytest.importorskip("sentence_transformers")
    model = st.SentenceTransformer(lower_case_folder, device="cpu")
    theirs = model.encode(TEXTS)
    theirs_query = model.encode(TEXTS, prompt_name="query")
    import fastbert

    pipe = fastbert.pipeline("sentence-embedding", model=lower_case_folder, normalize=False)
    ours = np.asarray(pipe(TEXTS, return_tensors=True))  # fastbert's pipeline (fastbert embed, run) too
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-5)
    with serving(model=lower_case_folder) as srv:
        c = srv.client
        r = c.post("/embed", json={"inputs": TEXTS, "normalize": False})
        assert r.status_code == 200, r.text
        np.testing.assert_allclose(np.asarray(r.json()), theirs, rtol=0, atol=1e-5)
        np.testing.assert_allclose(np.asarray(r.json()), ours, rtol=0, atol=1e-5)
        lower = c.post("/embed", json={"inputs": [t.lower() for t in TEXTS], "normalize": False}).json()
        assert r.json() == lower  # the same tokens
        r = c.post("/embed", json={"inputs": TEXTS, "normalize": False, "prompt_name": "query"})
        np.testing.assert_allclose(np.asarray(r.json()), theirs_query, rtol=0, atol=1e-5)
        # /tokenize shows the tokens the model gets (no [UNK]), its offsets still those of the text sent
        (tokens,) = c.post("/tokenize", json={"inputs": "The Cat", "add_special_tokens": False}).json()
        assert [t["id"] for t in tokens] == model.tokenizer("the cat", add_special_tokens=False)["input_ids"]
        assert [t["text"] for t in tokens] == ["The", "Cat"]
