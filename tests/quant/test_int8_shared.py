"""int8 on models whose layers share modules or weights (a layer, a linear, a weight, a self-attention used
by two layers): calibration quantizes the shared weight once and every layer runs its copy."""

import pytest
import torch

import fastbert
from fastbert.core.tolerances import MIN_COSINE_QUANTIZED, min_cosine
from fastbert.quant import QuantizedLinear, quantize
from fastbert.quant.int8 import int8_available

pytestmark = pytest.mark.skipif(not int8_available(), reason="torch without oneDNN int8 ops")

TINY = dict(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37)


def _share_layer(m):
    m.encoder.layer[1] = m.encoder.layer[0]


def _share_linear(m):
    m.encoder.layer[1].intermediate.dense = m.encoder.layer[0].intermediate.dense


def _share_weight(m):
    m.encoder.layer[1].intermediate.dense.weight = m.encoder.layer[0].intermediate.dense.weight


def _share_attention(m):
    m.encoder.layer[1].attention = m.encoder.layer[0].attention


@pytest.mark.parametrize("share", [_share_layer, _share_linear, _share_weight, _share_attention])
def test_shared_modules_and_weights_quantize(share, tmp_path):
    torch.manual_seed(0)
    model = fastbert.BertModel(fastbert.BertConfig(**TINY)).eval()
    share(model)
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(1, 99, (8, 16), generator=g)
    with torch.no_grad():
        ref = model(input_ids=ids).last_hidden_state
    keys = set(model.state_dict())
    quantize(model, "int8", calibration=[dict(input_ids=ids, attention_mask=torch.ones_like(ids))])
    report = model.quantization
    assert len(report.layers) == 8 and report.active
    assert all(isinstance(layer.intermediate.dense, QuantizedLinear) for layer in model.encoder.layer)
    with torch.no_grad():
        out = model(input_ids=ids).last_hidden_state
    assert min_cosine(out, ref) >= MIN_COSINE_QUANTIZED  # each token's vector: the rule of int8
    assert set(model.state_dict()) == keys
