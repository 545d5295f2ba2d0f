"""TEI's behaviour where a review against its source (router/src/http/server.rs, types.rs, lib.rs, main.rs,
core/src/tokenization.rs; the snapshot after v1.9.3) found fastbert serve answering differently: empty inputs,
the character limit, Content-Type, HEAD, the routes outside the API key, /vertex, pooling without a config,
default prompts, non-finite outputs, float32 numbers, and the command line's TEI forms and environment."""

from __future__ import annotations

import argparse
import json
import re
import shutil

import numpy as np
import pytest
from serve_helpers import serving

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")


def _empty(r, field="inputs"):
    assert r.status_code == 400, r.text
    body = r.json()
    assert (
        body["error_type"] == "Empty" and f"`{field}" in body["error"] and "cannot be empty" in body["error"]
    )


def test_empty_inputs_are_400_empty(mean_base_server):
    """TEI (core/src/tokenization.rs): an empty text or token-id list is refused before tokenizing."""
    c = mean_base_server.client
    _empty(c.post("/embed", json={"inputs": ""}))
    _empty(c.post("/embed", json={"inputs": ["the cat", ""]}), "inputs[1]")
    _empty(c.post("/embed", json={"inputs": [[]]}))
    _empty(c.post("/embed_all", json={"inputs": ""}))
    _empty(c.post("/tokenize", json={"inputs": ""}))
    _empty(c.post("/decode", json={"ids": []}), "ids")
    _empty(c.post("/decode", json={"ids": [[5], []]}), "ids[1]")
    r = c.post("/v1/embeddings", json={"input": ""})
    assert r.status_code == 400 and r.json()["error"]["type"] == "Empty" and r.json()["code"] == 400
    # whitespace is not empty: [CLS] [SEP]
    assert c.post("/embed", json={"inputs": " "}).status_code == 200


def test_character_limit_before_tokenizing(mean_base_server):
    """TEI's MAX_CHAR_MULTIPLIER: over max_input_length x 250 characters (64 x 250 here) an input is a 422
    without truncation, and is cut there with it, on the side truncation drops."""
    c = mean_base_server.client
    text = "cat " * 4000 + "dog " * 100  # 16,400 characters, over 16,000
    r = c.post("/embed", json={"inputs": text, "truncate": False})
    assert r.status_code == 422 and "16000 characters" in r.json()["error"] and "16400" in r.json()["error"]
    r = c.post("/tokenize", json={"inputs": text})  # /tokenize never truncates, as TEI's
    assert r.status_code == 422 and "characters" in r.json()["error"]
    left = c.post("/embed", json={"inputs": text, "truncation_direction": "left"}).json()
    want = c.post("/embed", json={"inputs": "dog " * 100, "truncation_direction": "left"}).json()
    np.testing.assert_allclose(left, want, atol=1e-6, rtol=0)  # the tail kept: cut from the left
    right = c.post("/embed", json={"inputs": text}).json()
    want = c.post("/embed", json={"inputs": "cat " * 100}).json()
    np.testing.assert_allclose(right, want, atol=1e-6, rtol=0)


@pytest.mark.parametrize(
    ("content_type", "status"),
    [
        (None, 415),
        ("text/plain", 415),
        ("application/x-www-form-urlencoded", 415),
        ("application/json; charset=utf-8", 200),
        ("Application/JSON", 200),
        ("application/vnd.api+json", 200),
    ],
)
def test_content_type(mean_base_server, content_type, status):
    """axum's Json extractor: a body not sent as JSON is a 415 that says so (not a 422 about the body)."""
    headers = {} if content_type is None else {"content-type": content_type}
    r = mean_base_server.client.post("/embed", content=b'{"inputs": "the cat"}', headers=headers)
    assert r.status_code == status, r.text
    if status == 415:
        assert (
            r.json()["error_type"] == "Validation" and "Content-Type: application/json" in r.json()["error"]
        )


def test_head_health_and_public_routes(mean_base_server):
    c = mean_base_server.client
    for path in ("/health", "/", "/ping"):
        r = c.head(path)
        assert r.status_code == 200 and r.content == b"", path
    doc = c.get("/openapi.json").json()
    assert "/vertex" in doc["paths"] and "head" not in doc["paths"]["/health"]


def test_vertex_route(mean_base_server):
    """TEI's /vertex: {"instances": [...]}, each the body of the model's route, answered in order."""
    c = mean_base_server.client
    r = c.post("/vertex", json={"instances": [{"inputs": "the cat"}, {"inputs": ["a dog", "the sky"]}]})
    assert r.status_code == 200, r.text
    got = r.json()["predictions"]
    np.testing.assert_allclose(got[0], c.post("/embed", json={"inputs": "the cat"}).json(), atol=1e-6, rtol=0)
    want = c.post("/embed", json={"inputs": ["a dog", "the sky"]}).json()
    np.testing.assert_allclose(got[1], want, atol=1e-6, rtol=0)
    r = c.post("/vertex", json={"instances": [{"inputs": "the cat"}, {"inputs": 5}]})
    assert r.status_code == 422 and "`instances[1].inputs`" in r.json()["error"], r.text
    r = c.post("/vertex", json={"instances": {"inputs": "x"}})
    assert r.status_code == 422 and "`instances`" in r.json()["error"]
    r = c.post("/vertex", json={"instances": [{"query": "a", "texts": ["b"]}]})  # a rerank body: not here
    assert r.status_code == 424 and r.json()["error_type"] == "Backend"


def test_non_finite_output_is_a_424(mean_base_server, monkeypatch):
    """An overflowed forward is answered 424 Backend with TEI's body (never a 500, nor NaN in the JSON)."""
    model = mean_base_server.state.models[0]
    monkeypatch.setattr(model, "run", lambda rows, ops: [np.full(32, np.nan, np.float32) for _ in rows])
    c = mean_base_server.client
    for path, body in (
        ("/embed", {"inputs": "the cat"}),
        ("/similarity", {"inputs": {"source_sentence": "a", "sentences": ["b"]}}),
        ("/v1/embeddings", {"input": "the cat"}),
    ):
        r = c.post(path, json=body)
        assert r.status_code == 424 and "NaN or infinity" in r.text, (path, r.text)


def test_numbers_are_float32_shortest(mean_base_server):
    """TEI writes its f32 values shortest (serde/ryu): the vector's numbers read back as the same float32s,
    and none carries more digits than a float32 needs (9 significant)."""
    pytest.importorskip("orjson")
    c = mean_base_server.client
    r = c.post("/embed", json={"inputs": "the cat sat on the mat"})
    got = np.asarray(r.json(), dtype=np.float32)
    numbers = re.findall(rb"-?\d[\d.eE+-]*", r.content)
    assert len(numbers) == got.size
    assert max(len(re.sub(rb"[-.]|e.*", b"", n.lower()).lstrip(b"0")) for n in numbers) <= 9
    np.testing.assert_array_equal(np.asarray([float(n) for n in numbers], dtype=np.float32), got.ravel())


def test_pooling_without_a_config(tiny, tmp_path):
    """TEI (router/src/lib.rs): without --pooling nor 1_Pooling/config.json a BERT-family model pools its
    first token (and says so once); 1_Pooling/config.json counts without modules.json."""
    from fastbert.serve import ServeOptions
    from fastbert.serve.engine import describe_model

    spec = describe_model(ServeOptions(model=tiny["base"]))
    assert spec.pooling == "cls" and any("cls" in n for n in spec.notes)
    folder = tmp_path / "pooled"
    shutil.copytree(tiny["base"], folder)
    (folder / "1_Pooling").mkdir()
    (folder / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode_max_tokens": True}))
    spec = describe_model(ServeOptions(model=str(folder)))
    assert spec.pooling == "max" and not spec.notes
    with serving(model=tiny["base"], pooling="lasttoken") as srv:
        assert srv.client.get("/info").json()["model_type"] == {"embedding": {"pooling": "last_token"}}


def test_pooling_of_a_non_bert_model_without_a_config(tmp_path):
    transformers = pytest.importorskip("transformers")
    config = transformers.MPNetConfig(
        vocab_size=99, hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=37
    )
    transformers.MPNetModel(config).save_pretrained(tmp_path)
    from fastbert.serve import ServeOptions
    from fastbert.serve.engine import describe_model

    with pytest.raises(ValueError, match="--pooling is not set .* no pooling config"):
        describe_model(ServeOptions(model=str(tmp_path)))
    assert describe_model(ServeOptions(model=str(tmp_path), pooling="mean")).pooling == "mean"


def test_default_prompt(prompt_model):
    """TEI applies a default prompt only from --default-prompt-name / --default-prompt; the config's own
    default_prompt_name is not applied."""
    text = {"inputs": "the sky is blue"}
    with serving(model=prompt_model, pooling="mean") as srv:
        c = srv.client
        plain = c.post("/embed", json=text).json()
        np.testing.assert_allclose(plain, c.post("/embed", json={**text, "prompt_name": "passage"}).json())
        query = c.post("/embed", json={**text, "prompt_name": "query"}).json()
        assert not np.allclose(plain, query, atol=1e-4)
    for option in ({"default_prompt_name": "query"}, {"default_prompt": "where is "}):
        with serving(model=prompt_model, pooling="mean", **option) as srv:
            c = srv.client
            np.testing.assert_allclose(c.post("/embed", json=text).json(), query, atol=1e-6, rtol=0)
            # a request's prompt_name goes first
            got = c.post("/embed", json={**text, "prompt_name": "passage"}).json()
            np.testing.assert_allclose(got, plain, atol=1e-6, rtol=0)
            tokens = c.post("/tokenize", json=text).json()[0]
            assert [t["text"] for t in tokens[1:3]] == ["where", "is"]
    from fastbert.serve import ServeOptions
    from fastbert.serve.engine import describe_model

    with pytest.raises(ValueError, match="'answer' is not a prompt of this model .*passage, query"):
        describe_model(ServeOptions(model=prompt_model, pooling="mean", default_prompt_name="answer"))
    with pytest.raises(ValueError, match="exclude each other"):
        describe_model(ServeOptions(model=prompt_model, default_prompt_name="query", default_prompt="x"))


def _parse(argv, environ=None):
    from fastbert.serve.cli import add_cli_arguments, options_from_args

    parser = argparse.ArgumentParser(prog="fastbert serve")
    add_cli_arguments(parser, environ={} if environ is None else environ)
    return options_from_args(parser.parse_args(argv))


def test_cli_takes_tei_forms_and_environment(capsys):
    """TEI 1.9's --auto-truncate (on by default, `--auto-truncate true|false` too), its environment
    variables (the command line first), -p, and its pooling name last-token."""
    assert _parse([]).auto_truncate is True
    assert _parse(["--auto-truncate"]).auto_truncate is True
    assert _parse(["--auto-truncate", "false"]).auto_truncate is False
    assert _parse(["--auto-truncate", "true"]).auto_truncate is True
    assert _parse(["--pooling", "last-token"]).pooling == "lasttoken"
    assert _parse(["-p", "3000"]).port == 3000
    env = {
        "AUTO_TRUNCATE": "false",
        "MAX_CLIENT_BATCH_SIZE": "7",
        "MODEL_ID": "/models/m",
        "API_KEY": "k",
        "PORT": "3001",
        "POOLING": "cls",
        "DEFAULT_PROMPT_NAME": "query",
        "CORS_ALLOW_ORIGIN": "http://a,http://b",
        "HOSTNAME": "some-machine",  # the shell's: not an address to bind
    }
    o = _parse([], env)
    assert (o.auto_truncate, o.max_client_batch_size, o.model, o.api_key, o.port) == (
        False,
        7,
        "/models/m",
        "k",
        3001,
    )
    assert (o.pooling, o.default_prompt_name, o.host) == ("cls", "query", "127.0.0.1")
    assert o.cors_allow_origin == ("http://a", "http://b")
    o = _parse(["--max-client-batch-size", "9", "--auto-truncate"], env)
    assert (o.max_client_batch_size, o.auto_truncate) == (9, True)
    for argv, environ, where in (
        ([], {"MAX_CLIENT_BATCH_SIZE": "many"}, "--max-client-batch-size"),
        ([], {"AUTO_TRUNCATE": "maybe"}, "--auto-truncate"),
        (["--pooling", "median"], {}, "--pooling"),
        (["--default-prompt-name", "q", "--default-prompt", "x"], {}, "not allowed with"),
    ):
        with pytest.raises(SystemExit):
            _parse(argv, environ)
        assert where in capsys.readouterr().err


@pytest.mark.parametrize(
    ("changes", "error", "said"),
    [
        (
            {"max_concurrent_requests": 0},
            ValueError,
            "max_concurrent_requests (--max-concurrent-requests) must",
        ),
        ({"max_client_batch_size": 0}, ValueError, "max_client_batch_size (--max-client-batch-size) must"),
        ({"max_concurrent_requests": "8"}, TypeError, "must be a whole number, got '8'"),
        ({"payload_limit": -1}, ValueError, "payload_limit (--payload-limit) must be at least 1"),
        ({"max_batch_tokens": 0}, ValueError, "max_batch_tokens"),
        ({"threads": 1.5}, TypeError, "threads (--threads) must be a whole number"),
        ({"port": 70000}, ValueError, "port (--port) must be 0..65535"),
        ({"graceful_shutdown_timeout": -1}, ValueError, "--graceful-shutdown-timeout"),
        ({"graceful_shutdown_timeout": float("inf")}, ValueError, "--graceful-shutdown-timeout) must be 0"),
        (
            {"max_batch_requests": 0},
            ValueError,
            "max_batch_requests (--max-batch-requests) must be at least 1",
        ),
        ({"max_concurrent_requests": True}, TypeError, "max_concurrent_requests"),
    ],
)
def test_serve_options_built_in_python_are_checked_as_the_cli_checks_them(changes, error, said):
    """create_app and the Ray deployment take a ServeOptions built in Python, which nothing checked: a
    limit of 0 answered every request 429 (or 422), a limit given as a string failed each with a 500."""
    from fastbert.serve import ServeOptions

    with pytest.raises(error, match=re.escape(said)):
        ServeOptions(**changes)
    with pytest.raises(error, match=re.escape(said)):
        ServeOptions().replace(**changes)
    ServeOptions(max_concurrent_requests=1, port=0, graceful_shutdown_timeout=0, threads=None)  # fine


def test_help_names_the_environment_variable_of_each_option_that_reads_one():
    """Every option TEI also reads from the environment says its variable in --help, as TEI's help does
    (a refusal that names --dtype may come from DTYPE), and no other option claims one."""
    from fastbert.serve.cli import ENV_OPTIONS, add_cli_arguments

    parser = argparse.ArgumentParser(prog="fastbert serve")
    add_cli_arguments(parser, environ={})
    said = {a.dest: a.help for a in parser._actions if "[env: " in (a.help or "")}
    assert {"model_id" if d == "model" else d for d in said} == set(ENV_OPTIONS)
    assert said["dtype"].endswith("[env: DTYPE]") and said["model"].endswith("[env: MODEL_ID]")
    assert all(h.count("env") == 1 for h in said.values()), said


def test_similarity_errors_name_the_source_sentence_and_the_sentence(mean_base_server):
    """/similarity embeds [source_sentence, *sentences] as one list; its errors named the source sentence
    `inputs.sentences[0]` and sentence k `inputs.sentences[k + 1]` (an index that may not exist)."""
    c = mean_base_server.client
    r = c.post("/similarity", json={"inputs": {"source_sentence": "", "sentences": ["cat"]}})
    _empty(r, "inputs.source_sentence")
    assert "inputs.source_sentence`" in r.json()["error"]
    r = c.post("/similarity", json={"inputs": {"source_sentence": "cat", "sentences": ["dog", ""]}})
    _empty(r, "inputs.sentences[1]")
    r = c.post("/similarity", json={"inputs": {"source_sentence": "cat", "sentences": ["dog", "sky"]}})
    assert r.status_code == 200 and len(r.json()) == 2


def test_a_lone_surrogate_is_a_422_naming_the_input(mean_base_server):
    """A lone UTF-16 surrogate ("\\ud800" in the JSON) is valid JSON but no Unicode text: a 422 naming the
    input (the tokenizer's own type error said neither which input nor why)."""
    body = '{"inputs": ["cat", "a \\ud800 b"]}'
    r = mean_base_server.client.post("/embed", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 422, r.text
    assert "`inputs[1]` is not valid Unicode" in r.json()["error"] and "lone surrogate" in r.json()["error"]


def test_prompt_refused_where_the_pooling_excludes_it(prompt_model, tmp_path):
    """A Pooling config with include_prompt false: sentence-transformers leaves the prompt's tokens out of
    the pooling, which the server does not do; a pooled embedding with a prompt is refused (it pooled the
    prompt's tokens silently), without one it is served; /tokenize and --pooling still take the prompt."""
    from fastbert.serve import ServeOptions
    from fastbert.serve.engine import describe_model

    path = tmp_path / "model"
    shutil.copytree(prompt_model, path)
    (path / "1_Pooling").mkdir(exist_ok=True)
    (path / "1_Pooling" / "config.json").write_text(
        json.dumps({"word_embedding_dimension": 32, "pooling_mode": "mean", "include_prompt": False})
    )
    with pytest.raises(ValueError, match="include_prompt false"):
        describe_model(ServeOptions(model=str(path), default_prompt_name="query"))
    assert describe_model(ServeOptions(model=str(path), default_prompt_name="query", pooling="mean"))
    text = {"inputs": "the sky is blue"}
    with serving(model=str(path)) as srv:
        c = srv.client
        r = c.post("/embed", json={**text, "prompt_name": "query"})
        assert r.status_code == 422 and "include_prompt false" in r.json()["error"], r.text
        plain = c.post("/embed", json=text).json()
        np.testing.assert_allclose(c.post("/embed", json={**text, "prompt_name": "passage"}).json(), plain)
        assert c.post("/tokenize", json={**text, "prompt_name": "query"}).status_code == 200


def test_too_long_without_truncation_names_what_the_route_takes(tiny):
    """With --auto-truncate false, an input over --max-input-length is a 422 that says how to truncate it:
    `truncate=true` on TEI's routes; the OpenAI route has no such field (it is ignored there, as in TEI, whose
    route truncates as the server's option says), so its error told the client to pass what it cannot."""
    text = "cat " * 100
    with serving(model=tiny["base"], pooling="mean", auto_truncate=False) as srv:
        c = srv.client
        r = c.post("/embed", json={"inputs": text})
        assert r.status_code == 422 and "pass truncate=true" in r.json()["error"], r.text
        assert c.post("/embed", json={"inputs": text, "truncate": True}).status_code == 200
        r = c.post("/v1/embeddings", json={"input": text})
        assert r.status_code == 422, r.text
        message = r.json()["error"]["message"]
        assert "`input` must have less than 64 tokens" in message and "--auto-truncate" in message
        assert "truncate=true" not in message
        assert c.post("/v1/embeddings", json={"input": text, "truncate": True}).status_code == 422
