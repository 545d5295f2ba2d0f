"""``fastbert.accelerate`` on sentence-transformers and transformers objects.

Parity is judged by ``fastbert.core.tolerances`` against a float64 run of the same transformers model, with the
transformers fp32 output as PyTorch's own error; sentence-transformers' ``encode`` is also held to the
issue's 1e-5 in fp32.
"""

import copy
import json
import os

import pytest
import torch
from model_helpers import TINY as MODEL_TINY
from model_helpers import (
    accelerate_quietly,
    accelerate_warnings,
    assert_gradients_meet_the_rule,
    perturb_norms_and_biases,
    plain_all_outputs,
    splade_modules,
    trainer_loss,
)

import fastbert
from fastbert.core.tolerances import assert_close
from fastbert.hub import embedded_model_path
from fastbert.modeling import MODEL_CLASSES

transformers = pytest.importorskip("transformers")
st = pytest.importorskip("sentence_transformers")
from sentence_transformers import CrossEncoder, SentenceTransformer  # noqa: E402

CUDA = torch.cuda.is_available()
SENTENCES = [
    "A man is eating food.",
    "",
    "The quick brown fox jumps over the lazy dog, and then it runs away into the forest. " * 30,  # > 256
    "Paris",
    "Tokyo is the capital of Japan and one of the largest cities in the world.",
    "a",
    "Sentence embeddings map text to vectors so that similar meanings lie close together.",
]
SHORT = [s for s in SENTENCES if len(s) < 1000]  # where the text longer than max_seq_length adds nothing


# --------------------------------------------------------------------------------------------- MiniLM
@pytest.fixture(scope="module")
def folder():
    return embedded_model_path()


@pytest.fixture(scope="module")
def plain(folder):
    return SentenceTransformer(folder, device="cpu")


@pytest.fixture(scope="module")
def ref64(folder):
    """The same model run by transformers in float64: the reference."""
    return SentenceTransformer(folder, device="cpu").to(torch.float64)


@pytest.fixture(scope="module")
def fast_and_hf(folder):
    model = SentenceTransformer(folder, device="cpu")
    hf = model[0].auto_model
    out = accelerate_quietly(model)
    assert out is model
    return model, hf


@pytest.fixture(scope="module")
def fast(fast_and_hf):
    return fast_and_hf[0]


def encode(model, sentences=SENTENCES, **kwargs):
    return model.encode(sentences, batch_size=4, convert_to_tensor=True, **kwargs)


def test_backbone_swapped_in_place(fast, plain):
    assert type(fast[0].auto_model) is fastbert.BertModel
    assert type(plain[0].auto_model) is transformers.BertModel
    assert fast[0].auto_model.attn_implementation == "sdpa"
    assert [type(m) for m in fast] == [type(m) for m in plain]  # pooling and normalize untouched


def test_encode_same_vectors(fast, plain, ref64):
    ours, theirs = encode(fast), encode(plain)
    ref = encode(ref64)
    assert ours.shape == theirs.shape == (len(SENTENCES), 384)
    assert ours.dtype == torch.float32
    assert_close(ours, theirs, ref, torch.float32, what="sentence_embedding")
    assert (ours - theirs).abs().max().item() <= 1e-5


def test_encode_numpy_normalize_and_similarity(fast, plain, ref64):
    ours = fast.encode(SHORT, normalize_embeddings=True)
    theirs = plain.encode(SHORT, normalize_embeddings=True)
    assert type(ours) is type(theirs)
    ours, theirs = torch.from_numpy(ours), torch.from_numpy(theirs)
    ref = torch.from_numpy(ref64.encode(SHORT, normalize_embeddings=True))
    assert_close(ours, theirs, ref, torch.float32, what="normalized")
    norms = ours.norm(dim=1)
    torch.testing.assert_close(norms, torch.ones_like(norms))
    sim_ours, sim_theirs = fast.similarity(ours, ours), plain.similarity(theirs, theirs)
    assert_close(sim_ours, sim_theirs, ref64.similarity(ref, ref), torch.float32, what="similarity")


def test_token_embeddings_trimmed_as_transformers(fast, plain, ref64):
    ours = fast.encode(SENTENCES, batch_size=4, output_value="token_embeddings")
    theirs = plain.encode(SENTENCES, batch_size=4, output_value="token_embeddings")
    ref = ref64.encode(SENTENCES, batch_size=4, output_value="token_embeddings")
    assert [t.shape for t in ours] == [t.shape for t in theirs]
    assert theirs[2].shape[0] == plain.max_seq_length  # the long text was truncated
    for a, b, r in zip(ours, theirs, ref):
        assert_close(a, b, r, torch.float32, what="token_embeddings")


def test_all_outputs_padded_positions_zero(fast, plain, ref64):
    """output_value=None gives each sentence's features untrimmed: the padded positions of fastbert's
    token_embeddings are zero (transformers leaves values there that no pooling reads)."""
    theirs = plain_all_outputs(plain, SHORT, batch_size=len(SHORT))
    ours = fast.encode(SHORT, batch_size=len(SHORT), output_value=None)
    refs = ref64.encode(SHORT, batch_size=len(SHORT), output_value=None)
    for a, b, r in zip(ours, theirs, refs):
        assert set(a) == set(b)
        mask = a["attention_mask"].bool()
        assert torch.equal(mask, b["attention_mask"].bool())
        assert not a["token_embeddings"][~mask].any()
        for key, where in (("token_embeddings", mask), ("sentence_embedding", None)):
            assert_close(a[key], b[key], r[key], torch.float32, where, what=key)


def test_all_layer_embeddings(fast, plain, ref64):
    """config.output_hidden_states makes sentence-transformers return every layer's token embeddings."""
    models = (fast, plain, ref64)
    outs = []
    for model in models:
        model[0].auto_model.config.output_hidden_states = True
        tokenize = getattr(model, "preprocess", None) or model.tokenize  # sentence-transformers 6 / 5
        try:
            with torch.no_grad():
                outs.append(model(tokenize(SHORT)))
        finally:
            model[0].auto_model.config.output_hidden_states = False
    ours, theirs, ref = outs
    mask = ours["attention_mask"].bool()
    assert len(ours["all_layer_embeddings"]) == len(theirs["all_layer_embeddings"]) == 7
    for x, y, z in zip(
        ours["all_layer_embeddings"], theirs["all_layer_embeddings"], ref["all_layer_embeddings"]
    ):
        assert_close(x, y, z, torch.float32, mask, what="all_layer_embeddings")
    assert_close(
        ours["sentence_embedding"], theirs["sentence_embedding"], ref["sentence_embedding"], torch.float32
    )


@pytest.mark.parametrize("precision", ["int8", "uint8", "binary", "ubinary"])
def test_precision_variants(fast, plain, precision):
    ours = fast.encode(SHORT, precision=precision)
    theirs = plain.encode(SHORT, precision=precision)
    assert ours.dtype == theirs.dtype and ours.shape == theirs.shape
    if precision in ("binary", "ubinary"):  # sign bits: no value sits within fp32 rounding of zero
        assert (ours == theirs).all()
    else:
        # int8 buckets come from the batch's own per-dimension min and max, whose elements land exactly
        # on a bucket edge: fp32 rounding may move such a value by one step, nothing moves further
        diff = abs(ours.astype("int64") - theirs.astype("int64"))
        assert diff.max() <= 1 and (diff > 0).mean() < 0.01


def test_prompt_and_truncation(fast, plain, ref64):
    kw = dict(prompt="query: ")
    ours, theirs, ref = (encode(m, SHORT, **kw) for m in (fast, plain, ref64))
    assert_close(ours, theirs, ref, torch.float32, what="prompt")
    for model in (fast, plain, ref64):
        model.max_seq_length = 8
    try:
        ours, theirs, ref = encode(fast), encode(plain), encode(ref64)
        assert fast.encode(SENTENCES[2:3], output_value="token_embeddings")[0].shape[0] == 8
    finally:
        for model in (fast, plain, ref64):
            model.max_seq_length = 256
    assert_close(ours, theirs, ref, torch.float32, what="max_seq_length=8")


def test_save_reloads_with_plain_sentence_transformers(fast, plain, tmp_path):
    fast.save(str(tmp_path))
    reloaded = SentenceTransformer(str(tmp_path), device="cpu")
    assert type(reloaded[0].auto_model) is transformers.BertModel
    assert torch.equal(encode(reloaded, SHORT), encode(plain, SHORT))  # the same weights, run by transformers
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["model_type"] == "bert" and config["architectures"] == ["BertModel"]
    hf = transformers.AutoModel.from_pretrained(str(tmp_path))
    assert type(hf) is transformers.BertModel


def test_accelerating_twice_is_a_no_op(fast):
    backbone = fast[0].auto_model
    assert accelerate_quietly(fast) is fast
    assert fast[0].auto_model is backbone


def test_device_move_keeps_working(fast, plain, ref64):
    fast.to("cpu")
    assert fast.device.type == "cpu"
    ours, theirs, ref = encode(fast, SHORT), encode(plain, SHORT), encode(ref64, SHORT)
    assert_close(ours, theirs, ref, torch.float32, what="sentence_embedding after .to")


def test_dtype_casts_the_whole_sentence_transformer(folder, plain, ref64):
    model = accelerate_quietly(SentenceTransformer(folder, device="cpu"), dtype=torch.bfloat16)
    assert model[0].auto_model.dtype == torch.bfloat16
    assert all(p.dtype == torch.bfloat16 for p in model.parameters())
    theirs = encode(copy.deepcopy(plain).to(torch.bfloat16), SHORT)
    ours = encode(model, SHORT)
    assert ours.dtype == torch.bfloat16
    assert_close(ours, theirs, encode(ref64, SHORT), torch.bfloat16, what="bf16 sentence_embedding")


@pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU")
def test_cuda_encode(folder, plain, ref64):
    """On CUDA the default backend is triton; judged against transformers fp32 on the same GPU."""
    model = accelerate_quietly(SentenceTransformer(folder, device="cpu")).to("cuda")
    assert model[0].auto_model.attn_implementation == "triton"
    theirs = encode(copy.deepcopy(plain).to("cuda")).cpu()
    ours = encode(model).cpu()
    assert_close(ours, theirs, encode(ref64), torch.float32, what="cuda sentence_embedding")


def test_sentence_transformer_shares_weight_storage(fast_and_hf):
    model, hf = fast_and_hf
    fb = model[0].auto_model
    assert fb.embeddings.word_embeddings.weight.data_ptr() == hf.embeddings.word_embeddings.weight.data_ptr()
    hf_storages = {p.untyped_storage().data_ptr() for p in hf.parameters()}
    fb_storages = {p.untyped_storage().data_ptr() for p in fb.parameters()}
    assert hf_storages == fb_storages  # no second copy: query/key/value are views of the fused weight
    layer = fb.encoder.layer[0].attention.self
    q = hf.encoder.layer[0].attention.self.query.weight
    assert q.untyped_storage().data_ptr() in {p.untyped_storage().data_ptr() for p in layer.parameters()}


# --------------------------------------------------------------------------------------------- CrossEncoder
@pytest.fixture(scope="module")
def cross_encoder_folder(folder, tmp_path_factory):
    """A tiny random BertForSequenceClassification (num_labels=1) saved with transformers, MiniLM's tokenizer."""
    path = tmp_path_factory.mktemp("cross-encoder")
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
    config = transformers.BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=37,
        max_position_embeddings=64,
        num_labels=1,
    )
    torch.manual_seed(5)
    model = transformers.BertForSequenceClassification(config).eval()
    perturb_norms_and_biases(model)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


PAIRS = [
    ("How many people live in Berlin?", "Berlin has a population of 3,520,031 registered inhabitants."),
    ("How many people live in Berlin?", "Berlin is well known for its museums."),
    ("", "an empty query"),
    ("What is the capital of France?", "Paris is the capital and most populous city of France. " * 10),
]


def test_cross_encoder_predict_and_rank(cross_encoder_folder):
    plain = CrossEncoder(cross_encoder_folder, device="cpu")
    ref = CrossEncoder(cross_encoder_folder, device="cpu").to(torch.float64)
    fast = accelerate_quietly(CrossEncoder(cross_encoder_folder, device="cpu"))
    assert type(fast.model) is fastbert.BertForSequenceClassification
    ours = fast.predict(PAIRS, batch_size=3, convert_to_tensor=True)
    theirs = plain.predict(PAIRS, batch_size=3, convert_to_tensor=True)
    assert_close(ours, theirs, ref.predict(PAIRS, batch_size=3, convert_to_tensor=True), torch.float32)
    docs = [d for _, d in PAIRS]
    ranks = [m.rank(PAIRS[0][0], docs) for m in (fast, plain, ref)]
    assert [r["corpus_id"] for r in ranks[0]] == [r["corpus_id"] for r in ranks[1]]
    scores = lambda rank: {r["corpus_id"]: float(r["score"]) for r in rank}
    by_id = [torch.tensor([scores(rank)[i] for i in range(len(docs))], dtype=torch.float64) for rank in ranks]
    assert_close(*by_id, torch.float32, what="rank scores")


def test_cross_encoder_save_reload(cross_encoder_folder, tmp_path):
    plain = CrossEncoder(cross_encoder_folder, device="cpu")
    fast = accelerate_quietly(CrossEncoder(cross_encoder_folder, device="cpu"))
    fast.save(str(tmp_path))
    reloaded = CrossEncoder(str(tmp_path), device="cpu")
    assert type(reloaded.model) is transformers.BertForSequenceClassification
    assert torch.equal(
        reloaded.predict(PAIRS, convert_to_tensor=True), plain.predict(PAIRS, convert_to_tensor=True)
    )


# --------------------------------------------------------------------------------------------- SparseEncoder
def test_sparse_encoder_splade(cross_encoder_folder, tmp_path):
    """A SPLADE SparseEncoder: its masked-LM backbone (BertForMaskedLM) is swapped; same sparse vectors."""
    backbone, SpladePooling = splade_modules()

    tokenizer = transformers.AutoTokenizer.from_pretrained(cross_encoder_folder)
    config = transformers.BertConfig(**dict(TINY, vocab_size=tokenizer.vocab_size))
    torch.manual_seed(2)
    perturb_norms_and_biases(transformers.BertForMaskedLM(config)).save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)

    def splade():
        return st.SparseEncoder(modules=[backbone(str(tmp_path)), SpladePooling("max")], device="cpu")

    texts = SHORT[:4]
    plain, ref = splade(), splade().to(torch.float64)
    fast = accelerate_quietly(splade())
    assert type(fast[0].auto_model) is fastbert.BertForMaskedLM
    ours, theirs, r = (m.encode(texts, convert_to_tensor=True).to_dense() for m in (fast, plain, ref))
    assert_close(ours, theirs, r, torch.float32, what="splade")


# --------------------------------------------------------------------------------------------- transformers
TINY = dict(MODEL_TINY, type_vocab_size=3)


def tiny_hf(name, **overrides):
    config = transformers.BertConfig(**dict(TINY, is_decoder=name == "BertLMHeadModel", **overrides))
    torch.manual_seed(1)
    return perturb_norms_and_biases(getattr(transformers, name)(config).eval())


def tiny_batch(name, b=3, seq=11):
    g = torch.Generator().manual_seed(3)
    shape = (b, 2, seq) if name == "BertForMultipleChoice" else (b, seq)
    ids = torch.randint(1, TINY["vocab_size"], shape, generator=g)
    mask = torch.ones(shape, dtype=torch.long)
    mask[1, ..., 7:] = 0
    mask[2, ..., 1:] = 0
    tt = torch.randint(0, TINY["type_vocab_size"], shape, generator=g)
    return dict(input_ids=ids, attention_mask=mask, token_type_ids=tt)


def tensors(out):
    return {k: v for k, v in out.items() if isinstance(v, torch.Tensor)}


@pytest.mark.parametrize("name", list(MODEL_CLASSES))
def test_transformers_model_of_each_class(name):
    hf = tiny_hf(name)
    ref_model = copy.deepcopy(hf).double()
    inputs = tiny_batch(name)
    with torch.no_grad():
        theirs, ref = tensors(hf(**inputs)), tensors(ref_model(**inputs))
        fast = accelerate_quietly(hf)
        assert type(fast) is MODEL_CLASSES[name]
        assert not fast.training
        ours = tensors(fast(**inputs))
    mask = inputs["attention_mask"].bool()
    for key, r in ref.items():
        per_token = tuple(r.shape[: mask.dim()]) == tuple(mask.shape)
        assert_close(
            ours[key], theirs[key], r, torch.float32, mask if per_token else None, what=f"{name}.{key}"
        )


@pytest.mark.parametrize("name", ["BertForMaskedLM", "BertForSequenceClassification"])
def test_transformers_model_save_pretrained_reloads_in_transformers(name, tmp_path):
    hf = tiny_hf(name)
    inputs = tiny_batch(name)
    with torch.no_grad():
        theirs = tensors(hf(**inputs))
        accelerate_quietly(hf).save_pretrained(tmp_path)
        reloaded = getattr(transformers, name).from_pretrained(tmp_path).eval()
        again = tensors(reloaded(**inputs))
    assert set(again) == set(theirs)
    for key in theirs:
        assert torch.equal(again[key], theirs[key]), key  # the same weights, run by transformers


def test_transformers_model_options():
    hf = tiny_hf("BertForMaskedLM")
    inputs = tiny_batch("BertForMaskedLM")
    with torch.no_grad():
        ref = copy.deepcopy(hf).double()(**inputs).logits
        theirs16 = copy.deepcopy(hf).to(torch.bfloat16)(**inputs).logits
        fast = accelerate_quietly(hf, attn_implementation="eager", dtype=torch.bfloat16)
        assert fast.attn_implementation == "eager" and fast.dtype == torch.bfloat16
        ours16 = fast(**inputs).logits
    assert ours16.dtype == torch.bfloat16
    mask = inputs["attention_mask"].bool()
    assert_close(ours16, theirs16, ref, torch.bfloat16, mask, what="bf16 logits")


def test_transformers_output_recording_hooks_are_not_refused():
    """transformers 5 leaves its output-recording hooks on the layers after output_hidden_states=True."""
    hf = tiny_hf("BertModel")
    inputs = tiny_batch("BertModel")
    with torch.no_grad():
        theirs = hf(**inputs, output_hidden_states=True).hidden_states
        fast = accelerate_quietly(hf)
        ours = fast(**inputs, output_hidden_states=True).hidden_states
    assert type(fast) is fastbert.BertModel and len(ours) == len(theirs)


def test_frozen_parameters_stay_frozen():
    hf = tiny_hf("BertModel")
    hf.embeddings.requires_grad_(False)
    fast = accelerate_quietly(hf)
    assert not fast.embeddings.word_embeddings.weight.requires_grad
    assert fast.encoder.layer[0].output.dense.weight.requires_grad


def test_transformers_model_shares_weight_storage():
    hf = tiny_hf("BertForMaskedLM")
    bytes_before = sum(storage_bytes(hf).values())
    fast = accelerate_quietly(hf)
    assert (
        fast.bert.embeddings.word_embeddings.weight.data_ptr()
        == hf.bert.embeddings.word_embeddings.weight.data_ptr()
    )
    assert set(storage_bytes(hf)) == set(storage_bytes(fast))  # every weight lives once, used by both
    assert sum(storage_bytes(fast).values()) == bytes_before  # no second copy (q/k/v: one fused storage)


def storage_bytes(model):
    """{storage address: size} of a model's parameters."""
    return {p.untyped_storage().data_ptr(): p.untyped_storage().nbytes() for p in model.parameters()}


# --------------------------------------------------------------------------------------------- fallback
def tiny_albert():
    """An architecture fastbert does not have."""
    config = transformers.AlbertConfig(
        vocab_size=99,
        embedding_size=16,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=37,
    )
    return transformers.AlbertModel(config).eval()


class MyBert(transformers.BertModel):
    pass


def with_hook():
    model = tiny_hf("BertModel")
    model.encoder.layer[0].register_forward_hook(lambda *a: None)
    return model


def mixed_dtype():
    model = tiny_hf("BertModel")
    model.encoder.layer[0].half()
    return model


@torch.no_grad()
def pruned():
    """A layer with one of its three heads removed, as transformers 4's prune_heads leaves it."""
    model = tiny_hf("BertModel")
    attention = model.encoder.layer[0].attention
    for name in ("query", "key", "value"):
        setattr(attention.self, name, torch.nn.Linear(36, 24))
    attention.output.dense = torch.nn.Linear(24, 36)
    return model


def checkpointing():
    model = tiny_hf("BertModel")
    enable = getattr(model, "activation_checkpointing_enable", None) or model.gradient_checkpointing_enable
    enable()
    return model


UNSUPPORTED = {
    "albert": (tiny_albert, "not a model type fastbert supports"),
    "subclass": (
        lambda: MyBert(transformers.BertConfig(**TINY)).eval(),
        "subclasses transformers' BertModel",
    ),
    "relative": (lambda: tiny_hf("BertModel", position_embedding_type="relative_key"), "relative_key"),
    "hook": (with_hook, "forward hooks"),
    "pruned": (pruned, "pruned attention heads"),
    "activation": (lambda: tiny_hf("BertModel", hidden_act="mish"), "hidden_act"),
    "mixed dtype": (mixed_dtype, "not all one of"),
}


@pytest.mark.parametrize("case", list(UNSUPPORTED))
def test_unsupported_model_unchanged_with_one_warning(case):
    build, why = UNSUPPORTED[case]
    model = build()
    out, caught = accelerate_warnings(model)
    assert out is model
    assert len(caught) == 1, [str(w.message) for w in caught]
    assert why in str(caught[0].message)
    with pytest.raises(ValueError, match=why):
        fastbert.accelerate(build(), strict=True)


def test_checkpointing_model_accelerated_keeps_checkpointing():
    """A model with gradient checkpointing on is accelerated (it was refused, the conversion dropping the
    setting): the fastbert model checkpoints the same layers and trains to transformers' gradients."""
    hf = checkpointing().train()
    fast, caught = accelerate_warnings(checkpointing())
    assert not caught, [str(w.message) for w in caught]
    assert type(fast).__module__.startswith("fastbert.") and fast.is_gradient_checkpointing
    fast.train()
    calls = []
    for layer in fast.encoder.layer:
        func = layer._gradient_checkpointing_func

        def counted(*args, _func=func, **kwargs):
            calls.append(1)
            return _func(*args, **kwargs)

        layer._gradient_checkpointing_func = counted
    batch = tiny_batch("BertModel")
    exact = copy.deepcopy(hf).double()  # the parity rule's reference: transformers' gradients in float64
    for model in (hf, fast, exact):
        model.config.hidden_dropout_prob = model.config.attention_probs_dropout_prob = 0.0
        for m in model.modules():
            if isinstance(m, torch.nn.Dropout):
                m.p = 0.0
        hidden = model(**batch).last_hidden_state  # (batch, seq, hidden)
        (hidden.square().sum(-1) * batch["attention_mask"]).mean().backward()  # padded positions differ
    assert len(calls) == len(fast.encoder.layer)
    assert all("pooler" in name for name, p in fast.named_parameters() if p.grad is None)  # not in the loss
    # block by block (a key bias's exact gradient is 0: its fp32 values are rounding noise at the scale of
    # its attention's query, key and value); a gradient in only some of the models fails there
    judged = assert_gradients_meet_the_rule(fast, hf, exact)
    assert judged == sum(p.grad is not None for p in fast.parameters()) > 10


def test_sentence_transformer_with_other_architecture(tmp_path, folder):
    """An ST whose backbone is not BERT: returned unchanged, one warning, and still encodes."""
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
    config = transformers.AlbertConfig(
        vocab_size=tokenizer.vocab_size,
        embedding_size=16,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=37,
        max_position_embeddings=64,
    )
    transformers.AlbertModel(config).save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    from sentence_transformers.models import Pooling, Transformer

    transformer = Transformer(str(tmp_path))
    model = SentenceTransformer(modules=[transformer, Pooling(32)], device="cpu")
    before = model.encode(SENTENCES[:2])
    out, caught = accelerate_warnings(model)
    assert out is model and type(model[0].auto_model) is transformers.AlbertModel
    assert len(caught) == 1 and "AlbertModel" in str(caught[0].message)
    assert (model.encode(SENTENCES[:2]) == before).all()
    with pytest.raises(ValueError, match="not a model type fastbert supports"):
        fastbert.accelerate(model, strict=True)


def test_module_without_transformers_model():
    out, caught = accelerate_warnings(torch.nn.Sequential(torch.nn.Linear(2, 2)))
    assert len(caught) == 1 and "no transformers model" in str(caught[0].message)
    with pytest.raises(ValueError, match="no transformers model"):
        fastbert.accelerate(torch.nn.Sequential(torch.nn.Linear(2, 2)), strict=True)


def test_mixed_container_accelerates_what_it_can():
    holder = torch.nn.ModuleDict({"bert": tiny_hf("BertModel"), "other": tiny_albert()})
    out, caught = accelerate_warnings(holder)
    assert out is holder
    assert type(holder["bert"]) is fastbert.BertModel
    assert type(holder["other"]) is transformers.AlbertModel
    assert len(caught) == 1 and "other (AlbertModel)" in str(caught[0].message)
    holder = torch.nn.ModuleDict({"bert": tiny_hf("BertModel"), "other": tiny_albert()})
    with pytest.raises(ValueError, match="other"):
        fastbert.accelerate(holder, strict=True)
    assert type(holder["bert"]) is transformers.BertModel  # strict changes nothing before it raises


def test_accelerating_a_mixed_container_again_applies_the_options():
    """A second call on an object whose other backbone was refused: the options reach the fastbert backbone
    swapped by the first call (they were dropped: the refused backbone sent it down the swapping path)."""
    holder = torch.nn.ModuleDict({"bert": tiny_hf("BertModel"), "other": tiny_albert()})
    accelerate_warnings(holder)
    fast = holder["bert"]
    assert fast.attn_implementation == "sdpa"
    out, caught = accelerate_warnings(holder, attn_implementation="eager", dtype=torch.bfloat16)
    assert out is holder and holder["bert"] is fast
    assert fast.attn_implementation == "eager"
    assert {p.dtype for p in holder.parameters()} == {torch.bfloat16}
    assert len(caught) == 1 and "keeps its 1 fastbert backbone(s)" in str(caught[0].message)
    assert "other (AlbertModel)" in str(caught[0].message)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(attn_implementation="flash_attention_2"), ValueError, "attn_implementation"),
        (dict(dtype=torch.int8), ValueError, "dtype"),
        (dict(cuda_graphs="yes"), TypeError, "cuda_graphs"),
        (dict(strict=1), TypeError, "strict"),
    ],
)
def test_bad_options(kwargs, error, match):
    model = tiny_hf("BertModel")
    with pytest.raises(error, match=match):
        fastbert.accelerate(model, **kwargs)


def test_bad_object_and_cuda_graphs_off_gpu():
    with pytest.raises(TypeError, match="SentenceTransformer"):
        fastbert.accelerate("sentence-transformers/all-MiniLM-L6-v2")
    if not CUDA:
        holder = torch.nn.ModuleDict({"bert": tiny_hf("BertModel")})
        for cuda_graphs in (True, {}):  # {}: a runner with the default limits, not "off"
            with pytest.raises(ValueError, match="CUDA device"):
                fastbert.accelerate(holder, cuda_graphs=cuda_graphs)
        assert type(holder["bert"]) is transformers.BertModel


@pytest.mark.skipif(CUDA, reason="cuda_graphs off a CUDA device")
def test_cuda_graphs_off_gpu_on_an_accelerated_object_changes_nothing():
    """accelerate again with cuda_graphs on a CPU model: the ValueError comes before the other options are
    applied (the backend was switched, then the call raised)."""
    holder = torch.nn.ModuleDict({"a": tiny_hf("BertModel"), "b": tiny_hf("BertModel")})
    accelerate_quietly(holder)
    fast = accelerate_quietly(tiny_hf("BertModel"))
    for obj, models in ((holder, [holder["a"], holder["b"]]), (fast, [fast])):
        with pytest.raises(ValueError, match="CUDA device"):
            fastbert.accelerate(obj, attn_implementation="eager", cuda_graphs=True)
        assert [m.attn_implementation for m in models] == ["sdpa"] * len(models)


def test_trainer_trains_an_accelerated_model(tmp_path):
    """transformers' Trainer (and sentence-transformers' trainers, built on it) read the text config of
    ``model.config`` (``get_text_config``) before the first step: an accelerated model trains to the plain
    model's losses."""
    hf = tiny_hf("BertForSequenceClassification", hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    b = tiny_batch("BertForSequenceClassification")
    rows = [{**{k: v[i] for k, v in b.items()}, "labels": torch.tensor(i % 2)} for i in range(3)]
    losses = []
    for model in (accelerate_quietly(copy.deepcopy(hf)), copy.deepcopy(hf), copy.deepcopy(hf).double()):
        assert model.config.get_text_config() is model.config
        losses.append(trainer_loss(model.train(), rows, tmp_path / str(len(losses))))
    # the last: the parity rule's reference, transformers in float64
    assert_close(*(torch.tensor(x, dtype=torch.float64) for x in losses), torch.float32, what="Trainer loss")


def test_quantization_refusals_change_nothing(folder):
    """A model the int8 path cannot take (fp16 weights on the CPU) is refused before its backbone is swapped;
    a transformers model loaded from a folder calibrates with that folder's tokenizer."""
    st = SentenceTransformer(folder, device="cpu", model_kwargs={"dtype": torch.float16})
    with pytest.raises(
        ValueError, match="from fp32 weights on the CPU, and this model would be torch.float16"
    ):
        fastbert.accelerate(st, quantization="int8")
    assert type(st[0].auto_model).__module__.startswith("transformers.")
    hf = transformers.BertModel.from_pretrained(folder)
    fast = accelerate_quietly(hf, quantization="int8")
    assert fast.config.name_or_path == hf.config._name_or_path == folder
    assert fast.quantization is not None
    built = tiny_hf("BertModel")  # built in code: no folder, no tokenizer
    query = built.encoder.layer[0].attention.self.query.weight
    with pytest.raises(ValueError, match="found no tokenizer"):
        fastbert.accelerate(built, quantization="int8")
    assert built.encoder.layer[0].attention.self.query.weight is query
    # a tokenizer that cannot pad (no pad token) failed in the calibration, after the swap
    st = SentenceTransformer(folder, device="cpu")
    st.tokenizer.pad_token = None
    with pytest.raises(ValueError, match="int8 calibration pads .*nothing was changed"):
        fastbert.accelerate(st, quantization="int8")
    assert type(st[0].auto_model).__module__.startswith("transformers.")


def test_one_backbone_held_twice_is_converted_once():
    """A tied encoder (one transformers model in two slots) becomes one fastbert model in both."""
    hf = tiny_hf("BertModel")
    holder = torch.nn.ModuleDict({"query": hf, "document": hf})
    n = sum(p.numel() for p in holder.parameters())
    accelerate_quietly(holder)
    assert holder["query"] is holder["document"] and type(holder["query"]) is fastbert.BertModel
    assert sum(p.numel() for p in holder.parameters()) == n


def test_refusal_warning_points_at_the_callers_line():
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fastbert.accelerate(torch.nn.Linear(2, 2))
    from fastbert.accelerate import AccelerateWarning

    (w,) = [w for w in caught if issubclass(w.category, AccelerateWarning)]
    assert w.filename == __file__


def test_module_import_keeps_function_callable():
    import fastbert.accelerate as module

    assert callable(module) and callable(fastbert.accelerate)
    assert module.accelerate is fastbert.accelerate or fastbert.accelerate is module
    model = tiny_hf("BertModel")
    assert type(fastbert.accelerate(model)) is fastbert.BertModel
    assert os.path.basename(module.__file__) == "accelerate.py"


def test_refusals_say_what_to_accelerate_instead():
    """A user's BertPreTrainedModel subclass around a BertModel (antiberty's AntiBERTy) is left whole, and the
    warning says to accelerate its encoder; a transformers pipeline is refused with fastbert.pipeline named."""
    from fastbert.accelerate import AccelerateWarning

    class MyHead(transformers.BertPreTrainedModel):
        def __init__(self, config):
            super().__init__(config)
            self.bert = transformers.BertModel(config)
            self.score = torch.nn.Linear(config.hidden_size, 1)

    model = MyHead(transformers.BertConfig(**TINY))
    with pytest.warns(AccelerateWarning, match=r"model\.bert = fastbert\.accelerate\(model\.bert\)"):
        assert fastbert.accelerate(model) is model
    model.bert = accelerate_quietly(model.bert)
    assert type(model.bert) is fastbert.BertModel

    class Pipeline:  # the shape of transformers' pipelines: a model attribute, no nn.Module
        def __init__(self, model):
            self.model = model

    with pytest.raises(TypeError, match="fastbert.pipeline"):
        fastbert.accelerate(Pipeline(tiny_hf("BertModel")))


def _tiny_bert():
    torch.manual_seed(0)
    return transformers.BertModel(transformers.BertConfig(**MODEL_TINY)).eval()


@pytest.mark.parametrize(
    ("edit", "said"),
    [
        (
            lambda m: torch.ao.quantization.quantize_dynamic(m, {torch.nn.Linear}, dtype=torch.qint8),
            "quantised",
        ),
        (lambda m: setattr(m.embeddings.LayerNorm, "eps", 1e-3) or m, "eps is 0.001"),
        (
            lambda m: (
                [
                    setattr(x.intermediate, "intermediate_act_fn", torch.nn.GELU("tanh"))
                    for x in m.encoder.layer
                ]
                and m
            ),
            "intermediate_act_fn",
        ),
    ],
)
def test_a_model_whose_modules_the_config_does_not_describe_is_left_as_it_is(edit, said):
    """A dynamically quantised backbone (torch.ao: its weight is a method, and accelerate crashed with an
    AttributeError), a LayerNorm eps or an activation module set by hand (fastbert, built from the config,
    would silently compute other numbers): left as they are, with one warning naming the reason."""
    model = edit(_tiny_bert())
    ids = torch.randint(1, MODEL_TINY["vocab_size"], (2, 7))
    with torch.no_grad():
        before = model(input_ids=ids).last_hidden_state
    out, caught = accelerate_warnings(model)
    assert out is model and len(caught) == 1 and said in str(caught[0].message), [
        str(w.message) for w in caught
    ]
    with torch.no_grad():
        assert torch.equal(model(input_ids=ids).last_hidden_state, before)
    with pytest.raises(ValueError, match="fastbert.accelerate"):
        fastbert.accelerate(edit(_tiny_bert()), strict=True)


def _without_dropout(model):
    """Dropout off by hand, as a fine-tuning script does: p=0 on every dropout, one swapped for nn.Identity."""
    for m in model.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
    model.base_model.embeddings.dropout = torch.nn.Identity()
    return model


def test_dropout_set_on_the_modules_is_kept():
    """Dropout turned off on transformers' modules (the config still says 0.1): fastbert's modules, built from
    the config, dropped out in training all the same, and a training step computed other numbers. Now the
    rates of the modules carry over; a dropout the config does not have (fastbert would skip it) is refused."""
    hf = _without_dropout(tiny_hf("BertForSequenceClassification")).train()
    inputs = tiny_batch("BertForSequenceClassification")
    theirs, ref = hf(**inputs).logits, copy.deepcopy(hf).double()(**inputs).logits
    fast = accelerate_quietly(hf)
    assert type(fast) is fastbert.BertForSequenceClassification and fast.training
    first, again = fast(**inputs).logits, fast(**inputs).logits
    assert torch.equal(first, again)  # no dropout
    assert_close(first, theirs, ref, torch.float32, what="logits")

    hf = tiny_hf("BertModel", hidden_dropout_prob=0.0)
    hf.encoder.layer[1].output.dropout.p = 0.2
    out, caught = accelerate_warnings(hf)
    assert out is hf and len(caught) == 1
    assert "encoder.layer.1.output.dropout.p is 0.2" in str(caught[0].message)
