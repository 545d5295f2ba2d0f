"""Inputs a careless user gives: a clear ValueError naming the argument, the same on every backend."""

import pytest
import torch

import fastbert
from fastbert.core.ops import triton_available

CFG = dict(
    vocab_size=50, hidden_size=24, num_hidden_layers=1, num_attention_heads=2, intermediate_size=30,
    max_position_embeddings=16,
)  # fmt: skip
BACKENDS = ["eager", "sdpa"] + (["triton"] if triton_available() else [])


def model_for(backend, cls=fastbert.BertModel):
    model = cls(fastbert.BertConfig(**CFG)).eval()
    model.set_attn_implementation(backend)
    return model


def message(backend, **inputs):
    with pytest.raises(ValueError) as info, torch.no_grad():
        model_for(backend)(**inputs)
    return str(info.value)


@pytest.mark.parametrize("shape", [(2, 0), (0, 5), (0, 0)], ids=["batch x 0", "0 x length", "0 x 0"])
def test_zero_size_inputs_same_clear_error_on_every_backend(shape):
    """transformers raises a reshape RuntimeError here; fastbert refuses the empty batch by name."""
    ids = torch.zeros(shape, dtype=torch.long)
    messages = {b: message(b, input_ids=ids) for b in BACKENDS}
    assert len(set(messages.values())) == 1, messages
    text = messages["sdpa"]
    assert "input_ids" in text and str(tuple(shape)) in text and "at least 1" in text
    embeds = torch.zeros(*shape, CFG["hidden_size"])
    assert "inputs_embeds" in message("sdpa", inputs_embeds=embeds)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    "name, dtype",
    [("position_ids", torch.float32), ("token_type_ids", torch.bool), ("position_ids", torch.float16)],
)
def test_float_or_bool_ids_are_refused(backend, name, dtype):
    ids = torch.ones(1, 4, dtype=torch.long)
    bad = torch.zeros(1, 4, dtype=dtype)
    text = message(backend, input_ids=ids, **{name: bad})
    assert name in text and "integer" in text


@pytest.mark.parametrize("backend", BACKENDS)
def test_out_of_range_positions_and_wrong_masks(backend):
    ids = torch.ones(2, 4, dtype=torch.long)
    assert "position_ids holds 16" in message(backend, input_ids=ids, position_ids=torch.full((2, 4), 16))
    assert "attention_mask has shape" in message(backend, input_ids=ids, attention_mask=torch.ones(4))
    assert "token_type_ids has shape" in message(
        backend, input_ids=ids, token_type_ids=torch.zeros(3, 4, dtype=torch.long)
    )
    assert "integer token ids" in message(backend, input_ids=torch.ones(2, 4, dtype=torch.complex64))


def test_errors_come_before_any_work(monkeypatch):
    """Validation happens on the host before an op of the table runs."""
    from fastbert.core import ops

    calls = []
    real = ops.TABLES["sdpa"]
    import dataclasses

    def spy(*a, **kw):
        calls.append(1)
        return real.embed(*a, **kw)

    monkeypatch.setitem(ops.TABLES, "sdpa", dataclasses.replace(real, embed=spy))
    message("sdpa", input_ids=torch.tensor([[1, 50]]))
    assert calls == []


def test_same_error_for_heads():
    model = model_for("sdpa", fastbert.BertForTokenClassification)
    with pytest.raises(ValueError, match="at least 1"):
        model(input_ids=torch.zeros(0, 3, dtype=torch.long))
