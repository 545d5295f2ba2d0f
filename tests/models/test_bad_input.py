"""Bad input raises a clear ValueError naming the problem, before anything runs, in every backend."""

import pytest
import torch

import fastbert

CFG = fastbert.BertConfig(
    vocab_size=50,
    hidden_size=24,
    num_hidden_layers=1,
    num_attention_heads=2,
    intermediate_size=30,
    max_position_embeddings=16,
    type_vocab_size=2,
)


@pytest.fixture(params=["eager", "sdpa"])
def model(request):
    m = fastbert.BertForMaskedLM(CFG).eval()
    m.set_attn_implementation(request.param)
    return m


def test_token_id_outside_vocab(model):
    ids = torch.tensor([[1, 2, 50]])
    with pytest.raises(ValueError, match=r"input_ids holds 50, outside \[0, 50\) \(vocab_size"):
        model(input_ids=ids)
    with pytest.raises(ValueError, match="input_ids holds -1"):
        model(input_ids=torch.tensor([[1, -1]]))


def test_token_type_outside_range(model):
    with pytest.raises(ValueError, match="token_type_ids holds 2.*type_vocab_size"):
        model(input_ids=torch.tensor([[1, 2]]), token_type_ids=torch.tensor([[0, 2]]))


def test_sequence_longer_than_max_positions(model):
    with pytest.raises(ValueError, match="longer than max_position_embeddings"):
        model(input_ids=torch.ones(1, 17, dtype=torch.long))
    model(input_ids=torch.ones(1, 16, dtype=torch.long))  # exactly the maximum is fine


def test_mask_of_wrong_shape(model):
    with pytest.raises(ValueError, match="attention_mask has shape"):
        model(input_ids=torch.ones(2, 5, dtype=torch.long), attention_mask=torch.ones(2, 4))


@pytest.mark.parametrize(
    "name", ["input_ids", "attention_mask", "token_type_ids", "position_ids", "inputs_embeds"]
)
def test_an_input_on_another_device_than_the_model_is_named(model, name):
    """A tensor on another device than the model's failed in torch's concatenation or lookup, naming no
    argument ("Expected all tensors to be on the same device"); here the meta device stands for another one."""
    ids = torch.ones(2, 5, dtype=torch.long)
    kwargs = dict(
        input_ids=ids,
        attention_mask=torch.ones(2, 5, dtype=torch.long),
        token_type_ids=torch.zeros(2, 5, dtype=torch.long),
        position_ids=torch.arange(5).expand(2, 5),
    )
    if name == "inputs_embeds":
        kwargs["inputs_embeds"] = model.get_input_embeddings()(kwargs.pop("input_ids"))
    kwargs[name] = kwargs[name].to("meta")
    with pytest.raises(ValueError, match=f"{name} is on meta, the model on cpu"):
        model(**kwargs)


def test_labels_of_wrong_shape(model):
    with pytest.raises(ValueError, match="labels has shape"):
        model(input_ids=torch.ones(2, 5, dtype=torch.long), labels=torch.ones(2, 4, dtype=torch.long))


def test_ids_of_wrong_rank_or_dtype(model):
    with pytest.raises(ValueError, match="batch, sequence_length"):
        model(input_ids=torch.ones(5, dtype=torch.long))
    with pytest.raises(ValueError, match="integer token ids"):
        model(input_ids=torch.ones(1, 5))
    with pytest.raises(ValueError, match="exactly one of input_ids or inputs_embeds"):
        model()


def test_unknown_forward_argument(model):
    with pytest.raises(TypeError, match="unexpected keyword"):
        model(input_ids=torch.ones(1, 3, dtype=torch.long), bogus=1)


def test_config_validation():
    config = fastbert.BertConfig(hidden_size=30, num_attention_heads=4)  # made, as transformers does
    with pytest.raises(ValueError, match="not a multiple of num_attention_heads"):
        fastbert.BertModel(config)  # refused when a model is built
    with pytest.raises(ValueError, match="position_embedding_type"):
        fastbert.BertConfig(position_embedding_type="rotary")
    with pytest.raises(ValueError, match="hidden_act"):
        fastbert.BertModel(
            fastbert.BertConfig(
                hidden_size=8,
                num_attention_heads=2,
                num_hidden_layers=1,
                intermediate_size=8,
                hidden_act="nope",
            )
        )


def test_transformers_4_keywords(model):
    """transformers 4-era code passes head_mask=None, use_cache=False: accepted, the same output; a head_mask
    that nullifies a head is refused by name (fastbert does not compute it; transformers 5 ignores it)."""
    ids = torch.randint(1, 48, (2, 6), generator=torch.Generator().manual_seed(0))  # ids + 2 fit RoBERTa's 50
    mask = torch.ones(2, 6, dtype=torch.long)
    mask[1, 4:] = 0
    with torch.no_grad():
        want = model(ids, attention_mask=mask).logits
        for extra in ({"head_mask": None}, {"head_mask": torch.ones(2, 2)}, {"use_cache": False}):
            torch.testing.assert_close(model(ids, attention_mask=mask, **extra).logits, want)
        with pytest.raises(ValueError, match="head_mask has values other than 1"):
            model(ids, attention_mask=mask, head_mask=torch.tensor([1.0, 0.0]))
        with pytest.raises(TypeError, match="unexpected keyword arguments \\['head_masks'\\]"):
            model(ids, attention_mask=mask, head_masks=None)
    mlm = fastbert.RobertaForMaskedLM(fastbert.RobertaConfig(**TINY_ROBERTA)).eval()
    with torch.no_grad():
        assert mlm(ids + 2, use_cache=False, head_mask=None).logits.shape == (2, 6, 50)


TINY_ROBERTA = dict(
    vocab_size=50, hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=37
)


@pytest.mark.parametrize("impl", ["eager", "sdpa"])
def test_encoder_states_of_another_batch_or_width(impl):
    """A decoder's ``encoder_hidden_states`` must hold one row per input row (or one row for all, which
    broadcasts as in transformers) of hidden_size: another batch or width failed inside the cross-attention
    with torch's shape error."""
    config = fastbert.BertConfig(**{**CFG.to_dict(), "is_decoder": True, "add_cross_attention": True})
    m = fastbert.BertLMHeadModel(config).eval()
    m.set_attn_implementation(impl)
    ids = torch.ones(3, 5, dtype=torch.long)
    for enc in (torch.randn(2, 4, 24), torch.randn(3, 4, 16), torch.randn(3, 4)):
        with pytest.raises(
            ValueError, match=r"encoder_hidden_states has shape .*expected \(3, encoder_length, 24\)"
        ):
            m(input_ids=ids, encoder_hidden_states=enc)
    # no encoder position: the cross-attention attended to nothing and gave zeros, where transformers fails
    with pytest.raises(
        ValueError, match=r"encoder_hidden_states has shape \(3, 0, 24\): no encoder position"
    ):
        m(input_ids=ids, encoder_hidden_states=torch.randn(3, 0, 24))
    one = torch.randn(1, 4, 24)
    with torch.no_grad():
        torch.testing.assert_close(
            m(input_ids=ids, encoder_hidden_states=one).logits,
            m(input_ids=ids, encoder_hidden_states=one.expand(3, 4, 24)).logits,
        )


@pytest.mark.parametrize("impl", ["eager", "sdpa", "triton"])
@pytest.mark.parametrize(
    "name", ["input_ids", "attention_mask", "token_type_ids", "position_ids", "inputs_embeds", "labels"]
)
def test_sparse_and_nested_inputs_are_named(impl, name, monkeypatch):
    """A sparse (COO, CSR) or nested tensor failed deep inside with torch's own words, naming no argument
    ("Could not run 'aten::aminmax' with arguments from the 'SparseCPU' backend", "NestedTensorImpl doesn't
    support sizes. Please file an issue"; transformers fails alike). It is refused by name, before anything
    runs, on every backend."""
    from fastbert.kernels import _compat

    monkeypatch.setattr(_compat, "launch", lambda *a, **k: pytest.fail("a kernel ran"))
    model = fastbert.BertForMaskedLM(CFG).eval()
    model.set_attn_implementation(impl)
    kwargs = dict(
        input_ids=torch.ones(2, 5, dtype=torch.long),
        attention_mask=torch.ones(2, 5, dtype=torch.long),
        token_type_ids=torch.zeros(2, 5, dtype=torch.long),
        position_ids=torch.arange(5).repeat(2, 1),
        labels=torch.ones(2, 5, dtype=torch.long),
    )
    if name == "inputs_embeds":
        kwargs["inputs_embeds"] = torch.randn(2, 5, CFG.hidden_size)
        del kwargs["input_ids"]
    dense = kwargs[name]
    for odd, what in (
        (dense.to_sparse(), "torch.sparse_coo"),
        (dense.to_sparse_csr() if dense.dim() == 2 else dense.to_sparse(2), "torch.sparse_(csr|coo)"),
        (torch.nested.nested_tensor(list(dense)), "nested"),
    ):
        with torch.no_grad(), pytest.raises(TypeError, match=f"{name} is a {what} tensor"):
            model(**{**kwargs, name: odd})


@pytest.mark.parametrize("impl", ["eager", "sdpa", "triton"])
def test_a_model_on_the_meta_device_says_it_cannot_run(impl):
    """A model built on the meta device (no weights given yet) failed its forward with torch's "Cannot copy out
    of meta tensor; no data!" from the one host read of the inputs' values, and with meta-less inputs with
    "move the inputs to the model's device", which cannot help. transformers runs a shape-only forward there;
    fastbert reads values, and says so."""
    with torch.device("meta"):
        model = fastbert.BertForMaskedLM(CFG).eval()
    model.set_attn_implementation(impl)
    for dev in ("meta", "cpu"):
        with torch.no_grad(), pytest.raises(NotImplementedError, match="the model is on the meta device"):
            model(input_ids=torch.ones(2, 5, dtype=torch.long, device=dev))


@pytest.mark.parametrize("impl", ["eager", "sdpa", "triton"])
def test_inputs_embeds_wider_than_the_model_are_named(impl):
    """float64 or complex inputs_embeds into a float32 model failed in the embeddings' LayerNorm with torch's
    "mixed dtype (CPU): all inputs must share same datatype", naming nothing (transformers fails alike); a
    ValueError names inputs_embeds and the cast. Narrower or integer embeddings promote to the model's dtype
    and run, as in transformers, and a float64 model takes float64 embeddings."""
    model = fastbert.BertModel(CFG).eval()
    model.set_attn_implementation(impl)
    embeds = torch.randn(2, 5, CFG.hidden_size)
    for dtype in (torch.float64, torch.complex64):
        with (
            torch.no_grad(),
            pytest.raises(ValueError, match=f"inputs_embeds is {dtype}, the model torch.float32"),
        ):
            model(inputs_embeds=embeds.to(dtype))
    with torch.no_grad():
        for dtype in (torch.float16, torch.bfloat16, torch.int64):
            assert model(inputs_embeds=embeds.to(dtype)).last_hidden_state.dtype == torch.float32
        wide = model.double()(inputs_embeds=embeds.double()).last_hidden_state
    assert wide.dtype == torch.float64


@pytest.mark.parametrize("impl", ["eager", "sdpa", "triton"])
def test_encoder_states_of_another_dtype_are_named(impl):
    """A decoder's ``encoder_hidden_states`` of another dtype than its cross-attention weights (float64,
    bfloat16 or integer states into a float32 model) failed in the key projection with torch's "mat1 and mat2
    must have the same dtype", naming nothing (transformers fails alike); a ValueError names them and the cast.
    Under autocast the float states run, as in transformers, and a bfloat16 model takes bfloat16 states."""
    config = fastbert.BertConfig(**{**CFG.to_dict(), "is_decoder": True, "add_cross_attention": True})
    m = fastbert.BertLMHeadModel(config).eval()
    m.set_attn_implementation(impl)
    ids = torch.ones(2, 5, dtype=torch.long)
    enc = torch.randn(2, 4, 24)
    with torch.no_grad():
        for dtype in (torch.float64, torch.bfloat16, torch.int64):
            with pytest.raises(ValueError, match=f"encoder_hidden_states is {dtype}, the cross-attention"):
                m(input_ids=ids, encoder_hidden_states=enc.to(dtype))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert m(input_ids=ids, encoder_hidden_states=enc.bfloat16()).logits.shape == (2, 5, 50)
        assert (
            m.bfloat16()(input_ids=ids, encoder_hidden_states=enc.bfloat16()).logits.dtype == torch.bfloat16
        )
