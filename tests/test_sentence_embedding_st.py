"""The ``sentence-embedding`` pipeline on sentence-transformers folders: what ``SentenceTransformer.encode``
reads from the folder, the pipeline follows (judged by ``fastbert.core.tolerances`` against the folder run
by sentence-transformers in float64)."""

import json

import pytest
import torch
from model_helpers import minilm_folder, old_layout, perturb_norms_and_biases

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


def _bert_folder(tmp_path, name="bert"):
    """A tiny BERT (hidden 32) with MiniLM's uncased tokenizer."""
    src = tmp_path / name
    tokenizer = transformers.AutoTokenizer.from_pretrained(minilm_folder(weights=False))
    config = transformers.BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=37,
        max_position_embeddings=64,
    )
    torch.manual_seed(7)
    perturb_norms_and_biases(transformers.BertModel(config).eval()).save_pretrained(src)
    tokenizer.save_pretrained(src)
    return src


def test_do_lower_case_of_sentence_bert_config(tmp_path):
    """``do_lower_case: true`` in sentence_bert_config.json (sentence-transformers < 6 wrote it; 6 still reads
    it): sentence-transformers lower-cases the texts before a cased tokenizer; the pipeline did not (other
    tokens, other vectors)."""
    src = _bert_folder(tmp_path)
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


def _st_folder(tmp_path, pooling, normalize=True, **st_kwargs):
    """A saved SentenceTransformer folder: the tiny BERT, ``pooling`` (a Pooling), Normalize."""
    try:
        from sentence_transformers.sentence_transformer.modules import Normalize
    except ImportError:
        from sentence_transformers.models import Normalize
    modules = [Transformer(str(_bert_folder(tmp_path))), pooling] + ([Normalize()] if normalize else [])
    folder = tmp_path / "st"
    st.SentenceTransformer(modules=modules, device="cpu", **st_kwargs).save(str(folder))
    return str(folder)


def _theirs(folder, texts, **encode_kwargs):
    model = st.SentenceTransformer(folder, device="cpu")
    theirs = model.encode(texts, convert_to_tensor=True, **encode_kwargs)
    ref = model.to(torch.float64).encode(texts, convert_to_tensor=True, **encode_kwargs)
    return theirs, ref


PROMPTS = {"document": "passage: ", "query": "Query: "}


def test_prompts_and_truncate_dim_of_config_sentence_transformers(tmp_path):
    """config_sentence_transformers.json's default prompt and truncate_dim apply by default, as
    SentenceTransformer.encode (the pipeline gave the whole width, without the prompt); a call's
    prompt_name / prompt / truncate_dim override them, at construction too."""
    folder = _st_folder(
        tmp_path, Pooling(32, "mean"), truncate_dim=8, prompts=PROMPTS, default_prompt_name="document"
    )
    pipe = fastbert.pipeline("sentence-embedding", model=folder)
    theirs, ref = _theirs(folder, TEXTS)
    ours = pipe(TEXTS, return_tensors=True)
    assert ours.shape == (len(TEXTS), 8)
    assert_close(ours, theirs, ref, torch.float32, what="default prompt, truncate_dim")
    # truncated after Normalize, not normalized again (the full vector is a unit one)
    assert not torch.allclose(ours.norm(dim=1), torch.ones(len(TEXTS)), atol=1e-3)

    for call, encode in [
        ({"prompt_name": "query"}, {"prompt_name": "query"}),
        ({"prompt": "Represent this: "}, {"prompt": "Represent this: "}),
        ({"prompt": ""}, {"prompt": ""}),
        ({"truncate_dim": 16}, {"truncate_dim": 16}),
    ]:
        theirs, ref = _theirs(folder, TEXTS, **encode)
        assert_close(pipe(TEXTS, return_tensors=True, **call), theirs, ref, torch.float32, what=str(call))
        built = fastbert.pipeline("sentence-embedding", model=folder, **call)
        assert_close(built(TEXTS, return_tensors=True), theirs, ref, torch.float32, what=f"built {call}")

    built = fastbert.pipeline("sentence-embedding", model=folder, prompt_name="query")
    theirs, ref = _theirs(folder, TEXTS, prompt="X: ")
    assert_close(built(TEXTS, return_tensors=True, prompt="X: "), theirs, ref, torch.float32, what="call")

    # a call's normalize=True is encode's normalize_embeddings=True: unit vectors after the cut
    theirs, ref = _theirs(folder, TEXTS, normalize_embeddings=True)
    got = pipe(TEXTS, return_tensors=True, normalize=True)
    assert_close(got, theirs, ref, torch.float32, what="normalize=True, truncate_dim")
    torch.testing.assert_close(got.norm(dim=1), torch.ones(len(TEXTS)))

    with pytest.raises(ValueError, match=r"'nope'.*'document', 'query'"):
        pipe("hi", prompt_name="nope")
    with pytest.raises(ValueError, match="not both"):
        pipe("hi", prompt_name="query", prompt="a: ")
    with pytest.raises(ValueError, match="truncate_dim"):
        pipe("hi", truncate_dim=0)


@pytest.mark.parametrize("mode", ["mean", "cls", "max", "weightedmean", "lasttoken"])
def test_pooling_include_prompt_false(tmp_path, mode):
    """A Pooling with include_prompt false leaves the prompt's tokens out of the pooling, as
    sentence-transformers does (the pipeline pooled them)."""
    folder = _st_folder(
        tmp_path,
        Pooling(32, mode, include_prompt=False),
        normalize=False,
        prompts=PROMPTS,
        default_prompt_name="query",
    )
    theirs, ref = _theirs(folder, TEXTS)
    for batch_size in (1, 4):
        ours = fastbert.pipeline("sentence-embedding", model=folder, batch_size=batch_size)(
            TEXTS, return_tensors=True
        )
        assert_close(ours, theirs, ref, torch.float32, what=f"include_prompt false, {mode}")


@pytest.mark.parametrize("mode", ["mean", "mean_sqrt_len_tokens", "cls", "max", "weightedmean", "lasttoken"])
def test_pool_skip_packed_as_padded(mode):
    """pool's ``skip`` (include_prompt false) gives the same vectors on packed hidden states (serve's
    forward) as on the padded batch."""
    from fastbert.pipelines.sentence_embedding import pool

    torch.manual_seed(0)
    lengths, skip = [7, 5, 3], [3, 3, 3]
    padded = torch.randn(3, 7, 4)
    mask = torch.zeros(3, 7, dtype=torch.long)
    for r, n in enumerate(lengths):
        mask[r, :n] = 1
        padded[r, n:] = 0
    packed = torch.cat([padded[r, :n] for r, n in enumerate(lengths)])
    want = pool(padded, mask, lengths, (mode,), skip)
    torch.testing.assert_close(pool(packed, mask, lengths, (mode,), skip), want)
    if mode != "lasttoken":  # (the last token is after the prompt)
        assert not torch.allclose(want, pool(padded, mask, lengths, (mode,)))
    if mode == "mean":  # the mean of the tokens after the first three
        torch.testing.assert_close(want[0], padded[0, 3:7].mean(0))


def test_embed_follows_the_folders_prompt_and_truncate_dim(tmp_path):
    """``fastbert embed`` runs the pipeline, so its vectors carry the folder's default prompt and truncate_dim
    as SentenceTransformer.encode; the manifest says so (what the vectors mean), and the token counts that
    batch the rows include the prompt's tokens."""
    import json

    from fastbert.embed import Encoder, Job, embed, read_output

    folder = _st_folder(
        tmp_path, Pooling(32, "mean"), truncate_dim=8, prompts=PROMPTS, default_prompt_name="document"
    )
    texts = [t for t in TEXTS if t]  # embed refuses an empty row unless --on-error says otherwise
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(texts) + "\n")
    manifest = embed([str(corpus)], tmp_path / "out", model=folder)
    assert manifest["description"]["prompt"] == "passage: " and manifest["description"]["truncate_dim"] == 8
    assert json.loads((tmp_path / "out" / "_manifest.json").read_text())["description"]["truncate_dim"] == 8
    table = read_output(str(tmp_path / "out"))
    v = table.column("vector")
    flat = v.combine_chunks().flatten().to_numpy(zero_copy_only=False)
    ours = torch.from_numpy(flat.reshape(-1, v.type.list_size).copy())
    theirs, ref = _theirs(folder, texts)
    assert_close(ours, theirs, ref, torch.float32, what="fastbert embed")
    job = dict(
        task="sentence-embedding", model=folder, output_dtype="float32", column="text", on_error="fail"
    )
    nones = (
        "revision",
        "model_fingerprint",
        "dtype",
        "pooling",
        "normalize",
        "max_length",
        "function_to_apply",
    )
    sizes = dict(id_column=None, shard_rows=128, window=50, max_batch_tokens=1024)
    encoder = Encoder(Job(**job, **dict.fromkeys(nones), **sizes))
    prompt_tokens = len(encoder.tokenizer("passage: ", add_special_tokens=False)["input_ids"])
    plain = [len(ids) for ids in encoder.tokenizer(texts)["input_ids"]]
    assert encoder.lengths(texts) == [n + prompt_tokens for n in plain]


def test_run_writes_the_folders_truncate_dim_width(tmp_path, monkeypatch, capsys):
    """``fastbert run`` on a folder whose config_sentence_transformers.json sets truncate_dim: the vectors are
    that wide, and so are the CSV header and the ``.npy`` / ``.safetensors`` arrays (the run sized them by
    the hidden size: ``.npy`` failed to reshape the rows, the CSV had empty columns past the cut)."""
    import csv

    import numpy as np
    from cli_helpers import run_here
    from safetensors.numpy import load_file

    folder = _st_folder(tmp_path, Pooling(32, "mean"), truncate_dim=8)
    texts = [t for t in TEXTS if t]
    stdin = "\n".join(texts) + "\n"
    want = fastbert.pipeline("sentence-embedding", model=folder)(texts, return_tensors=True).numpy()
    assert want.shape == (len(texts), 8)
    for name in ("v.npy", "v.safetensors", "v.csv"):
        out = tmp_path / name
        p = run_here(
            monkeypatch, capsys, "--task", "sentence-embedding", "--model", folder, "--output", str(out),
            stdin=stdin,
        )  # fmt: skip
        assert p.returncode == 0, p.stderr
        if name.endswith(".npy"):
            got = np.load(out)
        elif name.endswith(".safetensors"):
            got = load_file(str(out))["embeddings"]
        else:
            rows = list(csv.reader(out.open()))
            assert rows[0] == ["index", *(f"dim_{j}" for j in range(8))]
            got = np.asarray([[float(v) for v in row[1:]] for row in rows[1:]])
        np.testing.assert_allclose(got, want, atol=1e-6, err_msg=name)


@pytest.mark.parametrize("pooling", [("mean",), ("cls", "mean"), ("mean", "cls")])
def test_save_pretrained_keeps_the_pooling(tmp_path, pooling):
    """A sentence-embedding pipeline saved with ``save_pretrained`` loads back (``pipeline(task, model=folder)``)
    to the same vectors, and sentence-transformers loads the folder to them too: the pooling, Dense, Normalize,
    max_seq_length, prompts and truncate_dim are written beside the model (the model and the tokenizer alone
    loaded back as mean pooling, unnormalized, with the tokenizer's length)."""
    try:
        from sentence_transformers.base.modules import Dense, Normalize
    except ImportError:
        from sentence_transformers.models import Dense, Normalize
    torch.manual_seed(3)
    modules = [
        Transformer(str(_bert_folder(tmp_path)), max_seq_length=16),
        Pooling(32, list(pooling) if len(pooling) > 1 else pooling[0], include_prompt=False),
        Dense(32 * len(pooling), 24, activation_function=torch.nn.GELU()),
        Normalize(),
    ]
    folder = tmp_path / "st"
    model = st.SentenceTransformer(
        modules=modules, device="cpu", truncate_dim=20, prompts=PROMPTS, default_prompt_name="query"
    )
    model.save(str(folder))
    texts = [*TEXTS, "a text longer than sixteen tokens " * 4]
    pipe = fastbert.pipeline("sentence-embedding", model=str(folder))
    want = pipe(texts, return_tensors=True)
    assert want.shape == (len(texts), 20)

    pipe.save_pretrained(tmp_path / "saved")
    again = fastbert.pipeline("sentence-embedding", model=str(tmp_path / "saved"))
    torch.testing.assert_close(again(texts, return_tensors=True), want)
    assert again.max_length == 16 and again.pooling == pooling and again.default_prompt == "Query: "

    theirs, ref = _theirs(str(tmp_path / "saved"), texts)
    assert_close(want, theirs, ref, torch.float32, what=f"saved pipeline, {pooling}")


def test_a_pooling_the_dense_module_cannot_take_is_refused(tmp_path, monkeypatch, capsys):
    """``pooling=`` of another width than the folder's Dense module takes (``["mean", "max"]`` on a folder
    trained on mean pooling) is refused naming both widths, at construction and per call, and ``fastbert run
    --pooling`` exits 2 with that message (torch's "mat1 and mat2 shapes cannot be multiplied" was raised at
    the first forward, a traceback from the CLI); a pooling of the same width runs."""
    try:
        from sentence_transformers.base.modules import Dense
    except ImportError:
        from sentence_transformers.models import Dense
    from cli_helpers import run_here

    modules = [Transformer(str(_bert_folder(tmp_path))), Pooling(32, "mean"), Dense(32, 16)]
    folder = str(tmp_path / "st")
    st.SentenceTransformer(modules=modules, device="cpu").save(folder)
    pipe = fastbert.pipeline("sentence-embedding", model=folder)
    assert len(pipe("hi", pooling="cls")) == 16
    with pytest.raises(ValueError, match=r"pooling=\['mean', 'max'\] gives vectors of 64 values.*takes 32"):
        pipe("hi", pooling=["mean", "max"])
    with pytest.raises(ValueError, match="gives vectors of 64 values.*takes 32"):
        fastbert.pipeline("sentence-embedding", model=folder, pooling=["mean", "max"])
    p = run_here(
        monkeypatch, capsys, "--task", "sentence-embedding", "--model", folder, "--pooling", "mean,max",
        stdin="hi\n",
    )  # fmt: skip
    assert p.returncode == 2 and "gives vectors of 64 values" in p.stderr and not p.stdout


def test_an_older_folder_with_the_transformer_in_a_subfolder(tmp_path, monkeypatch, capsys):
    """An older sentence-transformers folder keeps the transformer in modules.json's ``0_Transformer``
    (config.json, weights, tokenizer, sentence_bert_config.json's max_seq_length): the pipeline, ``fastbert
    run`` and ``fastbert embed`` load it as SentenceTransformer does, to its vectors (they stopped with "has
    no config.json ... is it a model folder?")."""
    import numpy as np
    from cli_helpers import run_here

    from fastbert.embed import embed, read_output

    folder = tmp_path / "st"
    modules = [Transformer(str(_bert_folder(tmp_path)), max_seq_length=8), Pooling(32, "mean")]
    st.SentenceTransformer(modules=modules, device="cpu").save(str(folder))
    folder = old_layout(folder)
    texts = [*(t for t in TEXTS if t), "a text longer than eight tokens " * 3]
    theirs, ref = _theirs(folder, texts)
    pipe = fastbert.pipeline("sentence-embedding", model=folder)
    assert pipe.max_length == 8
    ours = pipe(texts, return_tensors=True)
    assert_close(ours, theirs, ref, torch.float32, what="0_Transformer folder")

    out = tmp_path / "v.npy"
    p = run_here(
        monkeypatch, capsys, "--task", "sentence-embedding", "--model", folder, "--output", str(out),
        stdin="\n".join(texts) + "\n",
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    np.testing.assert_allclose(np.load(out), ours.numpy(), atol=1e-6)

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(texts) + "\n")
    embed([str(corpus)], tmp_path / "out", model=folder)
    v = read_output(str(tmp_path / "out")).column("vector")
    flat = v.combine_chunks().flatten().to_numpy(zero_copy_only=False)
    np.testing.assert_allclose(flat.reshape(len(texts), -1), ours.numpy(), atol=1e-6)


@pytest.mark.parametrize("name", ["sentence_roberta_config.json", "sentence_xlnet_config.json"])
@pytest.mark.parametrize("old", [False, True], ids=["top", "0_Transformer"])
def test_an_older_per_architecture_sentence_config(tmp_path, name, old):
    """Older folders named the transformer's config for their architecture (``sentence_roberta_config.json``,
    ``sentence_xlnet_config.json``...), which sentence-transformers still reads (``Transformer.load_config``):
    its max_seq_length and do_lower_case hold for the pipeline and ``fastbert serve`` (they were read from
    ``sentence_bert_config.json`` only: a text past max_seq_length ran whole, to other vectors)."""
    from fastbert.serve import ServeOptions
    from fastbert.serve.engine import describe_model

    folder = tmp_path / "st"
    modules = [Transformer(str(_bert_folder(tmp_path)), max_seq_length=8), Pooling(32, "mean")]
    st.SentenceTransformer(modules=modules, device="cpu").save(str(folder))
    config = json.loads((folder / "sentence_bert_config.json").read_text())
    (folder / "sentence_bert_config.json").unlink()
    (folder / name).write_text(
        json.dumps({"max_seq_length": 8, "do_lower_case": config.get("do_lower_case")})
    )
    # as such a folder's tokenizer says: the model's length, not max_seq_length (which saving wrote there)
    tok_config = json.loads((folder / "tokenizer_config.json").read_text())
    (folder / "tokenizer_config.json").write_text(json.dumps({**tok_config, "model_max_length": 64}))
    folder = old_layout(folder) if old else str(folder)
    texts = [*(t for t in TEXTS if t), "a text longer than eight tokens " * 3]
    theirs, ref = _theirs(folder, texts)
    assert st.SentenceTransformer(folder, device="cpu").max_seq_length == 8  # what it reads
    pipe = fastbert.pipeline("sentence-embedding", model=folder)
    assert pipe.max_length == 8
    assert_close(pipe(texts, return_tensors=True), theirs, ref, torch.float32, what=name)
    assert describe_model(ServeOptions(model=folder)).max_input_length == 8


def test_normalize_false_leaves_out_the_folders_normalize_module(tmp_path):
    """What the docs say of ``normalize=False`` / ``--no-normalize``: an override that leaves out the folder's
    Normalize module, giving the vectors before it, where ``encode(normalize_embeddings=False)`` still applies
    the module (it is part of the model)."""
    folder = _st_folder(tmp_path, Pooling(32, "mean"))
    theirs, _ = _theirs(folder, TEXTS, normalize_embeddings=False)
    assert torch.allclose(theirs.norm(dim=1), torch.ones(len(TEXTS)), atol=1e-5)  # still normalized
    full = st.SentenceTransformer(folder, device="cpu")
    model = st.SentenceTransformer(modules=[full[0], full[1]], device="cpu")  # no Normalize
    before = model.encode(TEXTS, convert_to_tensor=True)
    ref = model.to(torch.float64).encode(TEXTS, convert_to_tensor=True)
    ours = fastbert.pipeline("sentence-embedding", model=folder, normalize=False)(TEXTS, return_tensors=True)
    assert_close(ours, before, ref, torch.float32, what="normalize=False")
    assert not torch.allclose(ours.norm(dim=1), torch.ones(len(TEXTS)), atol=1e-3)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(module_output_name="projected"),
        dict(use_residual=True),
        dict(module_input_name="token_embeddings"),
    ],
    ids=["output", "residual", "input"],
)
def test_a_dense_module_of_another_input_or_output_is_refused(tmp_path, kwargs):
    """A Dense after the pooling that writes another output (``module_output_name``) leaves the sentence
    embedding as it was in ``SentenceTransformer.encode``; the pipeline applied it (vectors of its width, not
    the folder's): refused by name, as a residual or another input is."""
    try:
        from sentence_transformers.base.modules import Dense
    except ImportError:
        from sentence_transformers.models import Dense
    dense = Dense(32, 32 if "use_residual" in kwargs else 16, **kwargs)
    modules = [Transformer(str(_bert_folder(tmp_path))), Pooling(32, "mean"), dense]
    folder = str(tmp_path / "st")
    st.SentenceTransformer(modules=modules, device="cpu").save(folder)
    with pytest.raises(ValueError, match="module_output_name\\): fastbert applies plain Dense layers only"):
        fastbert.pipeline("sentence-embedding", model=folder)
