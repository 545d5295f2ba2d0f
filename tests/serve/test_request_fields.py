"""Request validation of ``fastbert serve`` against TEI's router (router/src/http/server.rs, types.rs) and
OpenAI's ``/v1/embeddings``, where a review found errors naming the wrong field or answers a client of either
would not get. Tiny random checkpoints on 127.0.0.1 only."""

from __future__ import annotations

import pytest
from serve_helpers import serving

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")


def _error(r) -> str:
    assert r.status_code == 422, r.text
    body = r.json()
    return body["error"] if isinstance(body["error"], str) else body["error"]["message"]


def test_a_token_id_outside_the_vocabulary_is_named_where_it_is(mean_base_server):
    """The error named ``inputs[0]`` for any bad id of a single token-id input (``[5, 6, 99999]``: the id
    at inputs[2]): it names the input as the other errors do, and the position."""
    c = mean_base_server.client
    message = _error(c.post("/embed", json={"inputs": [5, 6, 99999]}))
    assert message.startswith("`inputs`:") and "99999 at position 2" in message, message
    message = _error(c.post("/v1/embeddings", json={"input": [[5], [6, 99999]]}))
    assert message.startswith("`input[1]`:") and "99999 at position 1" in message, message
    message = _error(c.post("/embed_all", json={"inputs": ["the cat", [7, 8, 9, 4294967296]]}))
    assert message.startswith("`inputs[1]`:") and "4294967296 at position 3" in message, message


def test_decode_skips_ids_outside_the_vocabulary_as_tei(mean_base_server):
    """TEI's /decode (core/src/tokenization.rs decode_ids: the tokenizers library's decode) leaves out an id
    that is no token, as the tokenizers library and transformers' fast tokenizer do; fastbert answered 422.
    An id that is no u32 stays a 422 naming it (TEI's ``Vec<u32>``); it was the tokenizer's OverflowError."""
    c = mean_base_server.client
    tok = mean_base_server.state.tokenizer
    assert c.post("/decode", json={"ids": [5, 99999]}).json() == [tok.decode([5], True)]
    r = c.post("/decode", json={"ids": [[5], [6, 99999, 7, 2**32 - 1]]})
    assert r.status_code == 200 and r.json() == [tok.decode([5], True), tok.decode([6, 7], True)], r.text
    assert c.post("/decode", json={"ids": [99999]}).json() == [""]
    message = _error(c.post("/decode", json={"ids": [5, 2**32]}))
    assert message.startswith("Input validation error: `ids[1]`: ") and "4294967295" in message, message


@pytest.mark.parametrize(
    ("path", "body", "named", "says"),
    [
        ("/v1/embeddings", {"input": ["the cat", 5]}, "input[1]", "valid string"),
        ("/embed", {"inputs": [[5, 6], [7, "x"]]}, "inputs[1][1]", "valid integer"),
        ("/embed", {"inputs": [5, -1]}, "inputs[1]", "greater than or equal to 0"),
        # the list of inputs refuses every item of [-1, 2] (ints are no inputs): the ids' -1 is at fault
        ("/embed", {"inputs": [-1, 2]}, "inputs[0]", "greater than or equal to 0"),
        ("/embed", {"inputs": [[-1], "the cat"]}, "inputs[0][0]", "greater than or equal to 0"),
        ("/predict", {"inputs": ["a", "b", "c"]}, "inputs", "at most 2 items"),
        ("/predict", {"inputs": [["a"], ["b", "c", "d"]]}, "inputs[1]", "at most 2 items"),
        ("/decode", {"ids": [[5], [6, "x"]]}, "ids[1][1]", "valid integer"),
    ],
)
def test_a_bad_input_of_a_union_field_is_named_first(mean_base_server, path, body, named, says):
    """``inputs`` / ``input`` take a string, token ids or a list of them (TEI's untagged enums): a bad item
    was reported as the string member's refusal of the whole list (```input`: Input should be a valid
    string``) for ``["the cat", 5]``, and three strings on /predict as ``Input should be a valid string``;
    the error now names first the item at fault and what is wrong with it."""
    message = _error(mean_base_server.client.post(path, json=body))
    assert message.startswith(f"Input validation error: `{named}`: ") and says in message, message


def test_ids_the_model_lacks_are_refused_before_the_batch(tiny, tmp_path):
    """A model whose embedding table is smaller than its tokenizer (tokens added to the tokenizer, the model
    not resized): the server checked ids against the tokenizer's size only, so such an id (sent, or made
    from a text) reached the forward, which failed with a 424, and failed every other request of its batch
    too. Now a 422 names the input before anything is queued; the other ids still run."""
    import json
    import shutil

    import torch
    import transformers

    path = tmp_path / "model"
    config = transformers.AutoConfig.from_pretrained(tiny["base"])
    size = config.vocab_size
    config.vocab_size = limit = (
        size - 8
    )  # the last 8 tokens of the tokenizer: "cat dog car sky blue" among them
    torch.manual_seed(0)
    transformers.AutoModel.from_config(config).save_pretrained(path)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(f"{tiny['base']}/{name}", path / name)
    with serving(model=str(path), pooling="mean") as srv:
        c = srv.client
        message = _error(c.post("/embed", json={"inputs": [5, limit]}))
        assert message.startswith("`inputs`:") and f"{limit} at position 1" in message, message
        vocab = json.loads((path / "tokenizer.json").read_text())["model"]["vocab"]
        piece = next(w for w, i in vocab.items() if i >= limit and w.startswith("##"))
        word = "qq" + piece[2:] * 3  # a word whose pieces the model lacks
        ids = c.post("/tokenize", json={"inputs": word, "add_special_tokens": False}).json()[0]
        assert any(t["id"] >= limit for t in ids), ids
        message = _error(c.post("/embed", json={"inputs": ["the", f"the {word}"]}))
        assert message.startswith("`inputs[1]`:") and "vocabulary of" in message, message
        assert "vocabulary of" in _error(c.post("/v1/embeddings", json={"input": word}))
        assert c.post("/embed", json={"inputs": ["the", [5, limit - 1]]}).status_code == 200
        assert c.post("/decode", json={"ids": [5, limit]}).status_code == 200  # no forward: the tokenizer's


def test_every_token_of_a_vocabulary_with_gaps_is_a_valid_id(mean_base_server):
    """The tiny vocabulary lists "a" and "##s" twice: its tokenizer holds 119 tokens, ids up to 120. The
    server took the count of tokens for the size of the vocabulary, so the ids of "##y" and "##z" (119,
    120), real tokens the tokenizer itself makes, were refused 422 when sent as token ids. Ids below the
    highest id + 1 (and the model's embedding table) run; the ids past it stay a 422."""
    c = mean_base_server.client
    tok = mean_base_server.state.tokenizer
    top = max(tok.plain.get_vocab(with_added_tokens=True).values())
    assert top + 1 > tok.plain.get_vocab_size(with_added_tokens=True)  # the vocabulary has gaps
    made = c.post("/tokenize", json={"inputs": "zz"}).json()[0]  # token ids are sent as they run (TEI)
    assert [t["id"] for t in made][1:3] == [tok.plain.token_to_id("z"), top], made
    by_text = c.post("/embed", json={"inputs": "zz"})
    by_ids = c.post("/embed", json={"inputs": [t["id"] for t in made]})
    assert by_text.status_code == by_ids.status_code == 200, by_ids.text
    assert by_ids.json() == by_text.json()
    message = _error(c.post("/embed", json={"inputs": [5, top + 1]}))
    assert f"{top + 1} at position 1" in message and f"vocabulary size {top + 1}" in message, message
