"""A sentence-transformers folder with Dense modules after the pooling (LaBSE's and stella's layout):
the sentence-embedding pipeline and ``fastbert serve`` apply them, as ``SentenceTransformer.encode`` does
(both returned the pooled vector before them, with no word); a module they cannot apply there is refused
by name at load."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
from serve_helpers import serving

import fastbert
from fastbert.core.tolerances import assert_close

st = pytest.importorskip("sentence_transformers")

SENTENCES = ["the cat sat", "a blue sky over the car", "dog"]


@pytest.fixture(scope="module")
def dense_folder(tiny, tmp_path_factory):
    """Transformer -> mean Pooling -> Dense(32 -> 24, tanh) -> Dense(24 -> 16, identity) -> Normalize."""
    import importlib

    torch.manual_seed(3)
    try:  # sentence-transformers 6's home of the modules; sentence_transformers.models before
        modules = importlib.import_module("sentence_transformers.sentence_transformer.modules")
    except ImportError:
        modules = importlib.import_module("sentence_transformers.models")
    word = modules.Transformer(tiny["base"])
    pooling = modules.Pooling(32, "mean")  # the tiny model's hidden size
    first = modules.Dense(32, 24, activation_function=torch.nn.Tanh())
    second = modules.Dense(24, 16, bias=False, activation_function=torch.nn.Identity())
    model = st.SentenceTransformer(modules=[word, pooling, first, second, modules.Normalize()], device="cpu")
    path = tmp_path_factory.mktemp("dense") / "model"
    model.save(str(path))
    return str(path)


def _reference(folder):
    plain = st.SentenceTransformer(folder, device="cpu")
    theirs = plain.encode(SENTENCES, convert_to_tensor=True)
    ref = plain.to(torch.float64).encode(SENTENCES, convert_to_tensor=True)
    return theirs, ref


def test_pipeline_and_server_apply_the_dense_modules(dense_folder):
    theirs, ref = _reference(dense_folder)
    assert theirs.shape == (3, 16)
    pipe = fastbert.pipeline("sentence-embedding", model=dense_folder)
    ours = pipe(SENTENCES, return_tensors=True)
    assert_close(ours, theirs, ref, torch.float32, what="pipeline")
    with serving(model=dense_folder) as srv:
        r = srv.client.post("/embed", json={"inputs": SENTENCES})
        assert r.status_code == 200, r.text
        served = torch.tensor(np.array(r.json(), dtype=np.float32))
        assert_close(served, theirs, ref, torch.float32, what="/embed")
        r = srv.client.post("/v1/embeddings", json={"input": SENTENCES[:1]})
        assert len(r.json()["data"][0]["embedding"]) == 16


def test_a_module_after_the_pooling_that_fastbert_cannot_apply_is_refused(dense_folder, tmp_path):
    import shutil

    from fastbert.serve import ServeOptions
    from fastbert.serve.engine import describe_model

    folder = tmp_path / "model"
    shutil.copytree(dense_folder, folder)
    modules = json.loads((folder / "modules.json").read_text())
    modules.insert(3, {"idx": 9, "name": "9", "path": "", "type": "sentence_transformers.models.LayerNorm"})
    (folder / "modules.json").write_text(json.dumps(modules))
    with pytest.raises(ValueError, match="LayerNorm"):
        fastbert.pipeline("sentence-embedding", model=str(folder))
    with pytest.raises(ValueError, match="LayerNorm"):
        describe_model(ServeOptions(model=str(folder)))


def test_a_normalize_module_of_another_feature_is_applied_as_sentence_transformers_does(
    dense_folder, tmp_path
):
    """sentence-transformers' Normalize normalises the feature its config's module_input_name names into its
    module_output_name: token embeddings into themselves, or the sentence embedding into another output,
    leave encode's vectors as they were, and fastbert (pipeline, server) normalised them all the same. Those
    are passed over now, as there (a Dense after such one applies too); one that writes another feature
    over the sentence embedding is refused by name."""
    import shutil

    from fastbert.serve import ServeOptions
    from fastbert.serve.engine import describe_model

    folder = tmp_path / "model"
    shutil.copytree(dense_folder, folder)
    modules = json.loads((folder / "modules.json").read_text())
    last = modules[-1]
    assert last["type"].endswith("Normalize")
    # a token-level Normalize between the pooling and the Dense modules, the folder's own last
    modules.insert(2, {**last, "idx": 9, "name": "9", "path": "9_Normalize"})
    (folder / "modules.json").write_text(json.dumps(modules))
    os.makedirs(folder / "9_Normalize")
    token_level = {"module_input_name": "token_embeddings"}
    (folder / "9_Normalize" / "config.json").write_text(json.dumps(token_level))
    theirs, ref = _reference(str(folder))
    assert_close(
        fastbert.pipeline("sentence-embedding", model=str(folder))(SENTENCES, return_tensors=True),
        theirs,
        ref,
        torch.float32,
        what="token-level Normalize before the Dense modules",
    )
    assert describe_model(ServeOptions(model=str(folder))).normalize is True

    last_folder = folder / last["path"]
    os.makedirs(last_folder, exist_ok=True)
    for config in (token_level, {"module_output_name": "normalized"}):
        (last_folder / "config.json").write_text(json.dumps(config))
        theirs, ref = _reference(str(folder))
        assert not torch.allclose(theirs.norm(dim=1), torch.ones(len(SENTENCES)), atol=1e-3)  # not unit
        ours = fastbert.pipeline("sentence-embedding", model=str(folder))(SENTENCES, return_tensors=True)
        assert_close(ours, theirs, ref, torch.float32, what=str(config))
        assert describe_model(ServeOptions(model=str(folder))).normalize is False

    over = {"module_input_name": "token_embeddings", "module_output_name": "sentence_embedding"}
    (last_folder / "config.json").write_text(json.dumps(over))
    match = rf"Normalize module in '{last['path']}'.*'token_embeddings'"
    with pytest.raises(ValueError, match=match):
        fastbert.pipeline("sentence-embedding", model=str(folder))
    with pytest.raises(ValueError, match=match):
        describe_model(ServeOptions(model=str(folder)))


@pytest.mark.parametrize(
    ("model_type", "usable"),
    [("bert", 40), ("roberta", 38), ("xlm-roberta", 38), ("mpnet", 38), ("electra", 40)],
)
def test_max_input_length_leaves_out_the_padding_offset(tmp_path, model_type, usable):
    """RoBERTa's family and MPNet number positions from padding_idx + 1: a table of 40 takes 38 tokens (TEI:
    max_position_embeddings - pad_token_id - 1); the server advertised 40 and answered 424 on 39-40 tokens."""
    from model_helpers import tiny_family_config

    from fastbert import registry
    from fastbert.serve import ServeOptions
    from fastbert.serve.engine import describe_model

    config = tiny_family_config(model_type, width=32, max_position_embeddings=40)
    assert registry.max_input_tokens(config) == usable
    registry.model_class(model_type, "base")(config).save_pretrained(tmp_path)
    assert describe_model(ServeOptions(model=str(tmp_path), pooling="mean")).max_input_length == usable


@pytest.mark.parametrize(
    ("edit", "name"),
    [
        (lambda m: m.insert(1, {"path": "9", "type": "sentence_transformers.models.WeightedLayerPooling"}),
         "WeightedLayerPooling"),
        (lambda m: m.insert(1, {"path": "9", "type": "sentence_transformers.models.Dense"}), "models.Dense"),
        (lambda m: m.__setitem__(slice(1, None), [
            {"path": "1_SpladePooling", "type": "sentence_transformers.sparse_encoder.modules.SpladePooling"}
        ]), "SpladePooling"),
    ],
    ids=["weighted-layer-pooling", "token-dense", "splade"],
)  # fmt: skip
def test_a_module_before_the_pooling_or_in_its_place_is_refused(dense_folder, tmp_path, edit, name):
    """A module between the transformer and the Pooling (WeightedLayerPooling, a Dense on the token
    embeddings) or a SparseEncoder's SpladePooling in place of the Pooling: SentenceTransformer.encode applies
    it; the pipeline and the server left it out with no word (and took SpladePooling's folder for the pooling
    config: mean), giving other vectors. Refused by name, as a module after the pooling is."""
    import shutil

    from fastbert.serve import ServeOptions
    from fastbert.serve.engine import describe_model

    folder = tmp_path / "model"
    shutil.copytree(dense_folder, folder)
    modules = json.loads((folder / "modules.json").read_text())
    edit(modules)
    (folder / "modules.json").write_text(json.dumps(modules))
    with pytest.raises(ValueError, match=name):
        fastbert.pipeline("sentence-embedding", model=str(folder))
    with pytest.raises(ValueError, match=name):
        describe_model(ServeOptions(model=str(folder)))


def test_an_older_folder_with_the_transformer_in_a_subfolder(dense_folder, tmp_path):
    """An older sentence-transformers folder keeps the transformer (config, weights, tokenizer,
    sentence_bert_config.json) in modules.json's ``0_Transformer``: the server loads it from there, as
    SentenceTransformer does, to its vectors and length limit (it refused the folder: "has no config.json")."""
    import shutil

    from model_helpers import old_layout

    from fastbert.serve import ServeOptions
    from fastbert.serve.engine import describe_model

    folder = old_layout(shutil.copytree(dense_folder, tmp_path / "model"))
    spec = describe_model(ServeOptions(model=folder))
    assert spec.model_path == str(tmp_path / "model" / "0_Transformer")
    assert spec.max_input_length == describe_model(ServeOptions(model=dense_folder)).max_input_length
    theirs, ref = _reference(folder)
    with serving(model=folder) as srv:
        r = srv.client.post("/embed", json={"inputs": SENTENCES})
        assert r.status_code == 200, r.text
        served = torch.tensor(np.array(r.json(), dtype=np.float32))
        assert_close(served, theirs, ref, torch.float32, what="/embed, 0_Transformer")


def test_a_pooling_the_dense_module_cannot_take_is_refused_at_startup(tiny, tmp_path):
    """``--pooling mean`` on a folder whose Dense module takes mean and max pooled (64 values) is refused at
    startup naming both widths, by the pipeline's check (each request answered 424 with torch's "mat1 and mat2
    shapes cannot be multiplied"); a pooling of the Dense module's width is served."""
    try:
        from sentence_transformers.base.modules import Dense, Transformer
        from sentence_transformers.sentence_transformer.modules import Pooling
    except ImportError:
        from sentence_transformers.models import Dense, Pooling, Transformer

    from fastbert.serve import ServeOptions
    from fastbert.serve.engine import describe_model

    torch.manual_seed(3)
    modules = [Transformer(tiny["base"]), Pooling(32, ["mean", "max"]), Dense(64, 16)]
    folder = str(tmp_path / "model")
    st.SentenceTransformer(modules=modules, device="cpu").save(folder)
    with pytest.raises(ValueError, match=r"--pooling mean gives vectors of 32 values.*takes 64"):
        describe_model(ServeOptions(model=folder, pooling="mean"))
    assert describe_model(ServeOptions(model=folder)).pooling_modes == ("mean", "max")


@pytest.mark.parametrize("older", [False, True], ids=["top", "0_Transformer"])
def test_a_hub_id_is_served_from_an_empty_cache(dense_folder, tmp_path, monkeypatch, older):
    """``--model org/name`` on an empty hub cache fetches what the served folder needs, as
    ``SentenceTransformer("org/name")`` does: the transformer's weights (in 0_Transformer in an older layout),
    the Pooling config and the Dense modules by the paths modules.json names (only the small files were
    fetched: the server failed on the snapshot folder, which held no weights), and no other file."""
    import shutil
    import uuid

    from model_helpers import fake_hub_download, old_layout

    folder = tmp_path / "repo"
    shutil.copytree(dense_folder, folder)
    modules = json.loads((folder / "modules.json").read_text())
    for module in modules:  # folder names of the modules' own choosing, not 1_Pooling / 2_Dense
        if module["path"]:
            (folder / module["path"]).rename(folder / f"my_{module['path']}")
            module["path"] = f"my_{module['path']}"
    (folder / "modules.json").write_text(json.dumps(modules))
    if older:
        old_layout(folder)
    (folder / "onnx").mkdir()  # what a hub repository carries besides: never fetched
    (folder / "onnx" / "model.onnx").write_bytes(b"onnx")
    theirs, ref = _reference(dense_folder)
    repo = f"someone/dense-{uuid.uuid4().hex[:8]}"
    fetched = fake_hub_download(monkeypatch, {repo: str(folder)})
    with serving(model=repo) as srv:
        r = srv.client.post("/embed", json={"inputs": SENTENCES})
        assert r.status_code == 200, r.text
        served = torch.tensor(np.array(r.json(), dtype=np.float32))
        assert_close(served, theirs, ref, torch.float32, what="/embed of a hub id")
    prefix = "0_Transformer/" if older else ""
    assert f"{prefix}model.safetensors" in fetched
    assert {"my_1_Pooling/config.json", "my_2_Dense/model.safetensors", "my_3_Dense/config.json"} <= set(
        fetched
    )
    assert not any(name.startswith("onnx") for name in fetched)


def test_a_hub_id_whose_weights_are_not_cached_offline_says_so(dense_folder, monkeypatch):
    """Offline, a hub id whose config is cached but not its weights is refused at startup, saying the weights
    are not in the local cache (the server started, and each worker said the cache's snapshot folder "holds
    no model weights")."""
    import uuid

    from model_helpers import fake_hub_download

    from fastbert.hub import resolve_file
    from fastbert.serve import ServeOptions
    from fastbert.serve.engine import describe_model

    repo = f"someone/dense-{uuid.uuid4().hex[:8]}"
    fake_hub_download(monkeypatch, {repo: dense_folder})
    for name in ("modules.json", "config.json", "1_Pooling/config.json"):
        resolve_file(repo, name)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(
        OSError, match=rf"'{repo}' is not a local folder, and its weights are not in the local cache"
    ):
        describe_model(ServeOptions(model=repo))
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")  # fetched once: served offline from the cache after
    online = describe_model(ServeOptions(model=repo))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert describe_model(ServeOptions(model=repo)).model_path == online.model_path


def test_a_hub_id_with_the_slow_tokenizer_files_only_is_served(tmp_path, monkeypatch):
    """A RoBERTa repository with transformers 4's slow tokenizer files only (vocab.json + merges.txt, no
    tokenizer.json): the server fetches the files fastbert's AutoTokenizer reads, by its own resolution, as
    for a local folder (only BERT's vocab.txt and tokenizer.json were fetched: the tokenizer failed)."""
    import json as _json
    import uuid

    from model_helpers import fake_hub_download
    from tokenizer_family_helpers import save_family_tokenizers

    from fastbert.serve import ServeOptions
    from fastbert.serve.engine import Tokenizer, describe_model

    slow = save_family_tokenizers(str(tmp_path / "tokenizers"))["roberta-slow"]
    vocab = _json.loads(open(f"{slow}/vocab.json").read())
    config = fastbert.RobertaConfig(
        vocab_size=len(vocab) + 2,
        hidden_size=8,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=8,
    )
    fastbert.RobertaModel(config).save_pretrained(slow)
    assert "tokenizer.json" not in os.listdir(slow)
    repo = f"someone/roberta-{uuid.uuid4().hex[:8]}"
    fake_hub_download(monkeypatch, {repo: slow})
    local = Tokenizer(describe_model(ServeOptions(model=slow, pooling="mean")))
    served = Tokenizer(describe_model(ServeOptions(model=repo, pooling="mean")))
    assert served.fast("the cat sat")["input_ids"] == local.fast("the cat sat")["input_ids"]
