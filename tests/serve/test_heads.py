"""Cross-encoders (``/rerank``), classifiers (``/predict``, InferenceClient.text_classification) and SPLADE
(``/embed_sparse``) on tiny random checkpoints, against sentence-transformers' CrossEncoder and
transformers' own forward."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from serve_helpers import serving, transformers

QUERY = "where does john live"
TEXTS = ["john lives in new york", "the sky is blue", "paris is the capital of france", "a cat and a dog"]


def test_rerank_equals_cross_encoder_predict(tiny):
    st = pytest.importorskip("sentence_transformers")
    ce = st.CrossEncoder(tiny["reranker"], device="cpu")
    want = ce.predict([(QUERY, t) for t in TEXTS])
    with serving(model=tiny["reranker"]) as srv:
        assert srv.client.get("/info").json()["model_type"]["reranker"]["id2label"] == {"0": "LABEL_0"}
        ranks = srv.client.post("/rerank", json={"query": QUERY, "texts": TEXTS, "return_text": True}).json()
        assert [r["score"] for r in ranks] == sorted((r["score"] for r in ranks), reverse=True)
        got = np.zeros(len(TEXTS))
        for r in ranks:
            got[r["index"]] = r["score"]
            assert r["text"] == TEXTS[r["index"]]
        np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)
        raw = srv.client.post("/rerank", json={"query": QUERY, "texts": TEXTS, "raw_scores": True}).json()
        logits = np.zeros(len(TEXTS))
        for r in raw:
            logits[r["index"]] = r["score"]
        np.testing.assert_allclose(1 / (1 + np.exp(-logits)), want, atol=1e-5, rtol=0)
        # POST / with {query, texts} is /rerank; an empty list is TEI's 400
        assert (
            srv.client.post("/", json={"query": QUERY, "texts": TEXTS}).json()
            == srv.client.post("/rerank", json={"query": QUERY, "texts": TEXTS}).json()
        )
        r = srv.client.post("/rerank", json={"query": QUERY, "texts": []})
        assert r.status_code == 400 and r.json()["error_type"] == "Empty"
        # an embedding route on a cross-encoder: TEI's 424
        r = srv.client.post("/embed", json={"inputs": "x"})
        assert r.status_code == 424 and r.json()["error_type"] == "Backend"


def test_classifier_predict_and_inference_client(tiny):
    hub = pytest.importorskip("huggingface_hub")
    model = transformers.BertForSequenceClassification.from_pretrained(tiny["classifier"]).eval()
    tok = transformers.BertTokenizerFast.from_pretrained(tiny["classifier"])
    texts = ["the cat is green", "john works at google in new york city", ("a dog", "a cat")]

    def reference(x):
        enc = tok(*((x,) if isinstance(x, str) else x), return_tensors="pt")
        with torch.no_grad():
            return torch.softmax(model(**enc).logits[0], -1).numpy()

    with serving(model=tiny["classifier"]) as srv:
        client = hub.InferenceClient(base_url=srv.url)
        top = client.text_classification(texts[0])  # TEI answers one input with its sorted predictions
        top = top[0] if isinstance(top, list) else top
        want = reference(texts[0])
        labels = ["NEG", "POS", "NEU"]
        assert top.label == labels[int(want.argmax())]
        assert abs(top.score - float(want.max())) < 1e-5
        # TEI's PredictInput: a batch is of lists ([a] or [a, b]); a string among them, or three strings, is a 422
        for bad in ([texts[0], [texts[1]]], ["a", "b", "c"], []):
            r = srv.client.post("/predict", json={"inputs": bad})
            assert r.status_code == 422 and r.json()["error_type"] == "Validation", bad
        body = {"inputs": [[texts[0]], [texts[1]], list(texts[2])]}
        got = srv.client.post("/predict", json=body).json()
        assert len(got) == 3
        for preds, x in zip(got, texts):
            want = reference(x)
            assert [p["score"] for p in preds] == sorted((p["score"] for p in preds), reverse=True)
            for p in preds:
                assert abs(p["score"] - float(want[labels.index(p["label"])])) < 1e-5
        pair = srv.client.post("/predict", json={"inputs": list(texts[2]), "raw_scores": True}).json()
        assert len(pair) == 3 and isinstance(pair[0], dict)  # a pair is one input
        r = srv.client.post("/rerank", json={"query": "a", "texts": ["b"]})
        assert r.status_code == 424 and "re-ranker" in r.json()["error"]
        # TEI checks for an empty `texts` before the model's kind: a 400 on any model
        r = srv.client.post("/rerank", json={"query": "a", "texts": []})
        assert r.status_code == 400 and r.json() == {
            "error": "`texts` cannot be empty",
            "error_type": "Empty",
        }


def test_equal_scores_are_ordered_as_tei_orders_them(tiny):
    """TEI sorts /rerank's ranks and /predict's labels with a stable ascending sort, then reverses the list:
    equal scores come out in reverse input order (router/src/http/server.rs). fastbert sorted by -score,
    keeping ties in input order, so duplicate texts (or equal class probabilities) came out reversed."""
    for model, logits in ((tiny["reranker"], [0.25]), (tiny["classifier"], [0.5, 0.5, 0.5])):
        with serving(model=model) as srv:
            worker = srv.state.models[0]
            worker.run = lambda rows, ops, logits=logits: [np.array(logits, dtype=np.float32) for _ in rows]
            if model == tiny["reranker"]:
                ranks = srv.client.post("/rerank", json={"query": QUERY, "texts": TEXTS}).json()
                assert [r["index"] for r in ranks] == [3, 2, 1, 0]
                vertex = srv.client.post("/vertex", json={"instances": [{"query": QUERY, "texts": TEXTS}]})
                assert vertex.json()["predictions"] == [ranks]
            else:
                preds = srv.client.post("/predict", json={"inputs": "the cat"}).json()
                assert [p["label"] for p in preds] == ["NEU", "POS", "NEG"]
                batch = srv.client.post("/predict", json={"inputs": [["the cat"], ["a dog"]]}).json()
                assert batch == [preds, preds]


def test_scores_are_float32_as_tei_computes_and_writes_them(tiny):
    """TEI computes /rerank's and /predict's sigmoid / softmax in f32 on the backend's f32 logits and writes
    the f32 shortest (core/src/infer.rs predict): fastbert computed and wrote them in float64
    (``0.4982347791081209`` where TEI writes ``0.49823478``), and ordered by the float64 values, so scores
    that TEI ties (sigmoid of logits 20 and 25: both 1.0 in f32) came out by logit instead of in TEI's
    reverse input order."""

    def written(r):  # each score as the text the server wrote
        return sorted(json.loads(r.text, parse_float=str), key=lambda x: x["index"] if "index" in x else 0)

    with serving(model=tiny["reranker"]) as srv:
        body = {"query": "q", "texts": ["a b", "the cat"]}
        raw = written(srv.client.post("/rerank", json={**body, "raw_scores": True}))
        ranks = written(srv.client.post("/rerank", json=body))
        for r, logit in zip(ranks, raw):
            assert str(np.float32(logit["score"])) == logit["score"]  # the backend's f32 logit, shortest
            want = np.float32(1) / (np.float32(1) + np.exp(-np.float32(logit["score"])))
            assert r["score"] == str(want), (r, want)
        # saturated scores tie in f32 (1.0), then come out in reverse input order, as TEI's
        pairs = [("q", "a"), ("q", "a a")]
        lengths = [len(ids) for ids, _ in srv.state.encode("texts", pairs, False, "right")]
        logit_of = {lengths[0]: 25.0, lengths[1]: 20.0}
        srv.state.models[0].run = lambda rows, ops: [
            np.array([logit_of[len(ids)]], dtype=np.float32) for ids, _ in rows
        ]
        ranks = srv.client.post("/rerank", json={"query": "q", "texts": ["a", "a a"]}).json()
        assert ranks == [{"index": 1, "score": 1.0}, {"index": 0, "score": 1.0}]
    with serving(model=tiny["classifier"]) as srv:
        preds = written(srv.client.post("/predict", json={"inputs": "the cat"}))
        assert all(str(np.float32(p["score"])) == p["score"] for p in preds), preds
        # exp(-1e-8) is 1.0 in f32: NEG and POS tie, and come out in reverse input order
        logits = np.array([1e-8, 0.0, -5.0], dtype=np.float32)
        srv.state.models[0].run = lambda rows, ops: [logits for _ in rows]
        preds = srv.client.post("/predict", json={"inputs": "the cat"}).json()
        assert [p["label"] for p in preds] == ["POS", "NEG", "NEU"], preds
        assert preds[0]["score"] == preds[1]["score"]


def test_rerank_errors_name_the_query_or_the_pair(tiny):
    """/rerank tokenizes the pairs (query, texts[k]); its errors named `texts[k]` (or `texts` for one text)
    whatever was at fault: a query too long alone, or with a lone surrogate, was blamed on the text. The query
    is named when it is at fault alone, the pair when the two together are too long or both empty."""

    def error(body, status=422, kind="Validation"):
        r = srv.client.post("/rerank", content=json.dumps(body), headers={"content-type": "application/json"})
        assert r.status_code == status and set(r.json()) == {"error", "error_type"}, r.text
        assert r.json()["error_type"] == kind, r.text
        return r.json()["error"]

    with serving(model=tiny["reranker"]) as srv:
        said = error({"query": "q " * 2000, "texts": ["a"], "truncate": False})
        assert said.startswith(
            "Input validation error: `query` must have less than 64 tokens. Given: 2002"
        ), said
        said = error({"query": "q", "texts": ["a", "b " * 100], "truncate": False})
        assert "`query` and `texts[1]` together must have less than 64 tokens. Given: 104" in said, said
        said = error({"query": "q" * 16001, "texts": ["a"], "truncate": False})
        assert said == "Input validation error: `query` must have less than 16000 characters. Given: 16001"
        said = error({"query": "q" * 8000, "texts": ["a", "b" * 8001], "truncate": False})
        assert "`query` and `texts[1]` together must have less than 16000 characters. Given: 16001" in said
        said = error({"query": "a \ud800", "texts": ["a", "b"]})
        assert said.startswith("`query` is not valid Unicode"), said
        said = error({"query": "a", "texts": ["a", "b \ud800"]})
        assert said.startswith("`texts[1]` is not valid Unicode"), said
        said = error({"query": "", "texts": ["a", ""]}, 400, "Empty")
        assert said == "`query` and `texts[1]` cannot both be empty"
        assert srv.client.post("/rerank", json={"query": "", "texts": ["a"]}).status_code == 200


def test_splade_embed_sparse(tiny):
    model = transformers.BertForMaskedLM.from_pretrained(tiny["mlm"]).eval()
    tok = transformers.BertTokenizerFast.from_pretrained(tiny["mlm"])
    texts = ["the cat is green", "paris is the capital of france"]
    with serving(model=tiny["mlm"], pooling="splade") as srv:
        got = srv.client.post("/embed_sparse", json={"inputs": texts}).json()
        assert srv.client.post("/", json={"inputs": texts}).json() == got
        r = srv.client.post("/embed_all", json={"inputs": texts})
        assert r.status_code == 424
    for sparse, text in zip(got, texts):
        enc = tok(text, return_tensors="pt")
        with torch.no_grad():
            want = torch.log1p(torch.relu(model(**enc).logits[0])).max(0).values.numpy()
        dense = np.zeros_like(want)
        for v in sparse:
            dense[v["index"]] = v["value"]
        assert all(v["value"] > 0 for v in sparse)
        np.testing.assert_allclose(dense, want, atol=1e-5, rtol=0)


@pytest.mark.parametrize("model_type", ["xlm-roberta", "distilbert", "electra", "mpnet", "modernbert"])
def test_rerank_and_predict_of_other_families_on_a_padded_batch(tiny, tmp_path, model_type):
    """A cross-encoder of another family (BAAI/bge-reranker-*: XLM-RoBERTa) reranks texts of different
    lengths as transformers' forward scores each pair. Its head reads the first token of the re-padded states,
    which the server's packed_outputs() handed it packed: every /rerank of unequal texts (and /predict on
    MPNet and ModernBERT) was a 424 'mat1 and mat2 shapes cannot be multiplied'."""
    import os
    import shutil

    from model_helpers import tiny_family_config

    import fastbert
    from fastbert import registry

    cls = getattr(fastbert, registry.family(model_type).classes["sequence-classification"])
    torch.manual_seed(0)
    folder = tmp_path / model_type
    cls(tiny_family_config(model_type, width=32, num_labels=1)).save_pretrained(folder)
    for name in os.listdir(tiny["reranker"]):  # the tiny WordPiece tokenizer
        if name.startswith(("vocab", "tokenizer", "special_tokens")):
            shutil.copy(os.path.join(tiny["reranker"], name), folder / name)
    model = transformers.AutoModelForSequenceClassification.from_pretrained(folder).eval()
    tok = transformers.BertTokenizerFast.from_pretrained(folder)
    takes_types = model_type not in ("distilbert", "mpnet", "modernbert")

    def reference(a, b=None):
        enc = tok(a, b, return_tensors="pt", return_token_type_ids=takes_types)
        with torch.no_grad():
            return float(model(**enc).logits[0, 0])

    with serving(model=str(folder)) as srv:
        raw = srv.client.post("/rerank", json={"query": QUERY, "texts": TEXTS, "raw_scores": True})
        assert raw.status_code == 200, raw.text
        got = {r["index"]: r["score"] for r in raw.json()}
        np.testing.assert_allclose(
            [got[k] for k in range(len(TEXTS))], [reference(QUERY, t) for t in TEXTS], atol=1e-5
        )
        body = {"inputs": [[t] for t in TEXTS], "raw_scores": True}
        preds = srv.client.post("/predict", json=body)
        assert preds.status_code == 200, preds.text
        np.testing.assert_allclose(
            [p[0]["score"] for p in preds.json()], [reference(t) for t in TEXTS], atol=1e-5
        )


def test_masked_lm_without_pooling_is_a_clear_error(tiny):
    from fastbert.serve import ServeOptions
    from fastbert.serve.engine import describe_model

    with pytest.raises(ValueError, match="--pooling splade"):
        describe_model(ServeOptions(model=tiny["mlm"]))


@pytest.mark.parametrize("pooling", ["cls", "mean", "splade"])
@pytest.mark.parametrize("head", ["reranker", "classifier"])
def test_pooling_does_not_turn_a_classifier_into_an_embedding_model(tiny, head, pooling):
    """TEI (router/src/lib.rs get_backend_model_type) serves a *ForSequenceClassification folder as its
    classifier or re-ranker whatever --pooling (or a POOLING set for every deployment) says, with a warning;
    fastbert served its encoder as an embedding model (/rerank a 424), or with --pooling splade a masked-LM
    head the checkpoint lacks (random weights)."""
    from fastbert.serve import ServeOptions
    from fastbert.serve.engine import describe_model

    spec = describe_model(ServeOptions(model=tiny[head], pooling=pooling))
    assert spec.kind == head and spec.architecture == "BertForSequenceClassification"
    assert any("--pooling" in note and "ignored" in note for note in spec.notes)
    assert describe_model(ServeOptions(model=tiny[head])).notes == []


def test_quantization_is_applied_never_silently_dropped(tiny):
    import torch

    from fastbert.quant import QuantizedLinear
    from fastbert.serve import ServeOptions
    from fastbert.serve.app import startup_line
    from fastbert.serve.engine import ServedModel, describe_model

    options = ServeOptions(model=tiny["base"], quantization="int8")
    spec = describe_model(options)
    served = ServedModel(spec, options, torch.device("cpu"))
    assert served.model.quantization is not None
    assert isinstance(served.model.encoder.layer[0].intermediate.dense, QuantizedLinear)
    n = len(served.model.quantization.layers)
    active = sum(d.precision == "int8" for d in served.model.quantization.layers)
    # said where a client and the log see it (/info and the startup line said float32 only)
    assert served.quantization == f"int8 ({active}/{n} linears)" and active > 0
    assert f"dtype=float32 quantization=int8 ({active}/{n} linears)" in startup_line("a", spec, [served])
    # refused off the CPU and CUDA by the quantizer, before any weight loads (it was refused on every GPU,
    # where int8 and fp8 run: "runs on the CPU (fastbert.quant)")
    with pytest.raises(ValueError, match="runs on the CPU .* or on CUDA"):
        ServedModel(describe_model(options), options, torch.device("meta"))


@pytest.mark.parametrize(
    "dtype, quantization, device, needle",
    [
        (
            "float16",
            "int8",
            "cpu",
            "--quantization int8 on the CPU computes from float32 weights, and --dtype is float16",
        ),
        ("bfloat16", "int8", "cpu", r"leave --dtype unset \(or pass float32\) with it"),
        (None, "fp8", "cpu", r"--quantization fp8 on cpu: .*compute capability 8.9.*--devices cuda:0"),
        (None, "int8", "meta", "--quantization int8 runs on the CPU .* or on CUDA .*, not on meta"),
    ],
)
def test_precision_flags_refused_in_flag_terms_before_loading(
    tiny, monkeypatch, dtype, quantization, device, needle
):
    """A --quantization the device or --dtype cannot run is refused naming the server's flags (it gave
    from_pretrained's advice: "leave torch_dtype / dtype unset", "load with device_map='cuda'"), and before
    any weight loads."""
    import torch

    from fastbert import auto
    from fastbert.serve import ServeOptions
    from fastbert.serve.engine import ServedModel, describe_model

    options = ServeOptions(model=tiny["base"], dtype=dtype, quantization=quantization)
    spec = describe_model(options)

    def no_loading(*args, **kwargs):
        raise AssertionError("the model loaded before the refusal")

    monkeypatch.setattr(auto.AutoModel, "from_pretrained", no_loading)
    with pytest.raises(ValueError, match=needle) as e:
        ServedModel(spec, options, torch.device(device))
    assert "torch_dtype" not in str(e.value) and "device_map" not in str(e.value)


def test_served_dtype_is_what_runs(tiny):
    """--dtype auto (from_pretrained's: the checkpoint's dtype) is reported as the dtype that runs, as TEI's
    /info model_dtype; it was reported as "auto"."""
    import torch

    from fastbert.serve import ServeOptions
    from fastbert.serve.engine import ServedModel, describe_model

    options = ServeOptions(model=tiny["base"], dtype="auto")
    served = ServedModel(describe_model(options), options, torch.device("cpu"))
    assert served.dtype_name == str(next(served.model.parameters()).dtype).removeprefix("torch.") == "float32"
    assert served.quantization is None


@pytest.mark.parametrize("pooling", ["mean", "cls", "max", "lasttoken", "weightedmean", "splade"])
def test_a_skewed_batch_is_reduced_on_the_packed_tokens(tiny, monkeypatch, pooling):
    """One long input among short ones: the outputs were re-padded to (rows, longest, hidden) — SPLADE's
    (rows, longest, vocab) — before pooling, so one request within every limit took GBs (6.3 GB for
    32 SPLADE inputs, one of 512 tokens). The pooling now runs on the packed tokens, and gives the padded
    pooling's vectors."""
    from fastbert.core.padding import unpack
    from fastbert.serve import ServeOptions, engine
    from fastbert.serve.engine import ServedModel, describe_model

    model = tiny["mlm"] if pooling == "splade" else tiny["base"]
    options = ServeOptions(model=model, pooling=pooling)
    served = ServedModel(describe_model(options), options, torch.device("cpu"))
    g = torch.Generator().manual_seed(0)
    rows = [([2] + torch.randint(5, 100, (n,), generator=g).tolist() + [3], []) for n in (3, 40, 1, 7)]
    ops = ["pooled", "all", "pooled", "pooled"] if pooling != "splade" else ["pooled"] * 4
    unpacked = []
    real_unpack = unpack

    def spy(x, packing):  # the serve path must not re-pad the last hidden state / the logits
        unpacked.append(tuple(x.shape))
        return real_unpack(x, packing)

    monkeypatch.setattr("fastbert.models.engine.unpack", spy)
    got = served.run(rows, ops)
    monkeypatch.undo()
    assert unpacked == []
    # the padded reference: the same forward outside packed_outputs, reduced over the padded batch
    lengths = [len(r[0]) for r in rows]
    L = max(lengths)
    ids = torch.zeros(len(rows), L, dtype=torch.long)
    mask = torch.zeros(len(rows), L, dtype=torch.long)
    for i, (r, _) in enumerate(rows):
        ids[i, : len(r)], mask[i, : len(r)] = torch.tensor(r), 1
    with torch.inference_mode():
        out = served.model(input_ids=ids, attention_mask=mask)
    for i in range(len(rows)):
        if pooling == "splade":
            act = torch.log1p(torch.relu(out.logits.float()))[i, : lengths[i]]
            want = act.max(dim=0).values
        elif ops[i] == "all":
            want = out.last_hidden_state[i, : lengths[i]]
        else:
            want = engine.pool(
                out.last_hidden_state.float()[i : i + 1],
                mask[i : i + 1],
                lengths[i : i + 1],
                served.spec.pooling_modes,
            )[0]
        np.testing.assert_allclose(got[i], want.numpy(), rtol=1e-5, atol=1e-6)


def test_dtype_auto_with_int8_on_a_half_checkpoint_is_refused_in_flag_terms(tiny, tmp_path, monkeypatch):
    """--dtype auto is the checkpoint's dtype: with --quantization int8 on the CPU and a float16 checkpoint
    the refusal names the server's flags, before loading (it gave from_pretrained's "leave torch_dtype /
    dtype unset" advice)."""
    import json
    import shutil

    import torch

    from fastbert import auto
    from fastbert.serve import ServeOptions
    from fastbert.serve.engine import ServedModel, describe_model

    path = tmp_path / "half"
    shutil.copytree(tiny["base"], path)
    config = json.loads((path / "config.json").read_text())
    config["torch_dtype"] = config["dtype"] = "float16"
    (path / "config.json").write_text(json.dumps(config))
    options = ServeOptions(model=str(path), dtype="auto", quantization="int8")
    spec = describe_model(options)

    def no_loading(*args, **kwargs):
        raise AssertionError("the model loaded before the refusal")

    monkeypatch.setattr(auto.AutoModel, "from_pretrained", no_loading)
    with pytest.raises(ValueError, match="--quantization int8 .* --dtype auto") as e:
        ServedModel(spec, options, torch.device("cpu"))
    assert "torch_dtype" not in str(e.value)
