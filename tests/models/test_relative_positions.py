"""position_embedding_type "relative_key" / "relative_key_query": transformers 4's published formula.

transformers 5 silently ignores these types, so the expected values come from a direct, loop-by-loop
implementation of transformers 4's formula in this file:
    score[i, j] = (q_i · k_j + q_i · D[i - j]  (+ k_j · D[i - j] for relative_key_query)) / sqrt(d)
with D the distance embedding indexed at (i - j) + max_position_embeddings - 1, and no absolute position
embedding added to the input.
"""

import math

import pytest
import torch
import torch.nn.functional as F
from model_helpers import assert_rule

import fastbert

#: CPU models only (no CUDA path): CI runs it; the GPU check's CUDA tier leaves it out
pytestmark = pytest.mark.cpu_only

CFG = dict(
    vocab_size=40,
    hidden_size=12,
    num_hidden_layers=1,
    num_attention_heads=2,
    intermediate_size=20,
    max_position_embeddings=10,
    type_vocab_size=2,
)


def reference_hidden(model, ids, mask, causal=False):
    """The 1-layer encoder output computed with explicit loops (transformers 4's formula); ``causal``: a
    decoder's, each position attending to itself and those before it."""
    emb = model.embeddings
    x = emb.word_embeddings(ids) + emb.token_type_embeddings(torch.zeros_like(ids))
    x = emb.LayerNorm(x)
    layer = model.encoder.layer[0]
    att = layer.attention.self
    h, d = att.num_attention_heads, att.attention_head_size
    b, n = ids.shape
    q = att.query(x).view(b, n, h, d)
    k = att.key(x).view(b, n, h, d)
    v = att.value(x).view(b, n, h, d)
    D = att.distance_embedding.weight
    P = CFG["max_position_embeddings"]
    ctx = torch.zeros(b, n, h, d, dtype=x.dtype)
    for bi in range(b):
        for hi in range(h):
            for i in range(n):
                scores = []
                for j in range(n):
                    r = D[i - j + P - 1]
                    s = q[bi, i, hi] @ k[bi, j, hi] + q[bi, i, hi] @ r
                    if att.position_embedding_type == "relative_key_query":
                        s = s + k[bi, j, hi] @ r
                    s = s / math.sqrt(d)
                    if mask[bi, j] == 0 or (causal and j > i):
                        s = s + torch.finfo(torch.float32).min
                    scores.append(s)
                p = torch.softmax(torch.stack(scores), dim=0)
                ctx[bi, i, hi] = (p[:, None] * v[bi, :, hi]).sum(0)
    ctx = ctx.reshape(b, n, h * d)
    a = layer.attention.output.LayerNorm(layer.attention.output.dense(ctx) + x)
    inter = F.gelu(layer.intermediate.dense(a))
    return layer.output.LayerNorm(layer.output.dense(inter) + a)


@pytest.mark.parametrize("kind", ["relative_key", "relative_key_query"])
@pytest.mark.parametrize("backend", ["eager", "sdpa"])
def test_relative_positions_match_published_formula(kind, backend):
    torch.manual_seed(0)
    model = fastbert.BertModel(fastbert.BertConfig(**CFG, position_embedding_type=kind)).eval()
    with torch.no_grad():
        att = model.encoder.layer[0].attention.self
        for w in (att.distance_embedding.weight, att.query.weight, att.key.weight, att.value.weight):
            w.normal_(0, 0.5)  # scores of order one, so the distance term matters
    model.set_attn_implementation(backend)
    ids = torch.randint(1, 40, (2, 6))
    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0]])
    with torch.no_grad():
        out = model(input_ids=ids, attention_mask=mask).last_hidden_state
    m = mask.bool()
    assert_rule(out[m], model, lambda model: reference_hidden(model, ids, mask)[m], what=kind)
    # the distance embedding changes the result: the test can fail
    with torch.no_grad():
        model.encoder.layer[0].attention.self.distance_embedding.weight.zero_()
        plain = model(input_ids=ids, attention_mask=mask).last_hidden_state
    assert (plain[m] - out[m]).abs().max() > 1e-3


def test_relative_checkpoint_round_trip(tmp_path):
    model = fastbert.BertModel(fastbert.BertConfig(**CFG, position_embedding_type="relative_key")).eval()
    model.save_pretrained(tmp_path)
    again = fastbert.BertModel.from_pretrained(tmp_path)
    key = "encoder.layer.0.attention.self.distance_embedding.weight"
    torch.testing.assert_close(again.state_dict()[key], model.state_dict()[key])


@pytest.mark.parametrize("kind", ["relative_key", "relative_key_query"])
def test_an_input_past_max_position_embeddings_is_refused_naming_it(kind):
    """distance_embedding has rows for max_position_embeddings positions: one more (in one call, or past +
    input on a cache) is a ValueError naming the limit, not an IndexError from inside the embedding."""
    torch.manual_seed(0)
    cfg = fastbert.BertConfig(**CFG, position_embedding_type=kind, is_decoder=True)
    model = fastbert.BertLMHeadModel(cfg).eval()
    n = CFG["max_position_embeddings"]
    with torch.no_grad():
        assert model(torch.randint(1, 40, (2, n))).logits.shape == (2, n, 40)  # exactly the limit fits
        with pytest.raises(ValueError, match=r"sequence length 11 .*max_position_embeddings \(10\)"):
            model(torch.randint(1, 40, (2, n + 1)))
        with pytest.raises(ValueError, match=r"sequence length 11 .*max_position_embeddings \(10\)"):
            model(torch.randint(1, 40, (2, n + 1)), position_ids=torch.zeros(2, n + 1, dtype=torch.long))
        past = model(torch.randint(1, 40, (1, n - 1)), use_cache=True).past_key_values
        with pytest.raises(ValueError, match=r"sequence length 11 .*max_position_embeddings \(10\)"):
            model(torch.randint(1, 40, (1, 2)), past_key_values=past)


def test_generate_past_max_position_embeddings_is_refused_before_generating_with_left_padding():
    """Relative distances count a row's columns, its left padding included: a padded prompt leaves no more
    room than an unpadded one of its length. generate refuses before the first forward (it checked the
    mask's positions and failed partway, after computing the tokens before)."""
    torch.manual_seed(0)
    cfg = fastbert.BertConfig(**CFG, position_embedding_type="relative_key", is_decoder=True)
    model = fastbert.BertLMHeadModel(cfg).eval()
    ids = torch.randint(1, 40, (1, 5))
    mask = torch.tensor([[0, 0, 1, 1, 1]])
    assert model.generate(ids, attention_mask=mask, max_new_tokens=6).shape == (1, 11)  # 10 columns fed
    calls = []
    model.register_forward_hook(lambda *args: calls.append(1))
    with pytest.raises(ValueError, match="max_new_tokens=7 .*At most 6 new tokens fit"):
        model.generate(ids, attention_mask=mask, max_new_tokens=7)
    assert not calls


@pytest.mark.parametrize("kind", ["relative_key", "relative_key_query"])
def test_a_decoder_and_its_cached_steps_match_the_published_formula(kind):
    """A causal decoder with relative positions, whole and one token at a time on its cache (the query at
    the last key's position, transformers 4's rule for a cached step), against the loop formula: the ported
    transformers test of a relative decoder's cache compares only the embedding output, which the distance
    table does not reach."""
    torch.manual_seed(0)
    cfg = fastbert.BertConfig(**CFG, position_embedding_type=kind, is_decoder=True)
    model = fastbert.BertModel(cfg, add_pooling_layer=False).eval()
    with torch.no_grad():
        att = model.encoder.layer[0].attention.self
        for w in (att.distance_embedding.weight, att.query.weight, att.key.weight, att.value.weight):
            w.normal_(0, 0.5)
    ids = torch.randint(1, 40, (2, 6))
    mask = torch.ones_like(ids)
    want = reference_hidden(model, ids, mask, causal=True)
    with torch.no_grad():
        whole = model(input_ids=ids).last_hidden_state
        out = model(input_ids=ids[:, :3], use_cache=True)
        steps = [out.last_hidden_state]
        for t in range(3, 6):
            out = model(input_ids=ids[:, t : t + 1], past_key_values=out.past_key_values, use_cache=True)
            steps.append(out.last_hidden_state)
    assert_rule(whole, model, lambda model: reference_hidden(model, ids, mask, causal=True), what=kind)
    assert_rule(
        torch.cat(steps, 1), model, lambda model: reference_hidden(model, ids, mask, causal=True), what=kind
    )
    assert (want - reference_hidden(model, ids, mask)).abs().max() > 1e-3  # the causal mask matters


def test_from_transformers_on_a_transformers_5_relative_config_says_why():
    """transformers 5 builds no distance table for relative_key and runs the model with absolute positions;
    from_transformers refused it by listing the distance_embedding weights as missing, without the reason or
    the way out, which gives transformers 5's numbers."""
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    hf = transformers.BertModel(transformers.BertConfig(**CFG, position_embedding_type="relative_key")).eval()
    if any("distance_embedding" in k for k in hf.state_dict()):
        pytest.skip("this transformers implements relative positions")
    with pytest.raises(
        ValueError, match="transformers 5 ignores relative positions.*position_embedding_type='absolute'"
    ):
        fastbert.from_transformers(hf)
    hf.config.position_embedding_type = "absolute"
    ids = torch.randint(1, 40, (2, 6))
    with torch.no_grad():
        torch.testing.assert_close(
            fastbert.from_transformers(hf)(ids).last_hidden_state,
            hf(ids).last_hidden_state,
            atol=1e-5,
            rtol=1e-5,
        )


def test_a_folder_transformers_5_saved_with_a_relative_config_says_why_its_tables_are_random(
    tmp_path, caplog
):
    """transformers 5 saves a relative_key config with absolute position weights and no distance table: loading
    it as the config says (transformers 4's formula) leaves the tables random, which the log now explains with
    the way to transformers 5's numbers (loading with position_embedding_type='absolute')."""
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    hf = transformers.BertModel(transformers.BertConfig(**CFG, position_embedding_type="relative_key")).eval()
    if any("distance_embedding" in k for k in hf.state_dict()):
        pytest.skip("this transformers implements relative positions")
    hf.save_pretrained(tmp_path)
    with caplog.at_level("WARNING", logger="fastbert"):
        fastbert.BertModel.from_pretrained(tmp_path)
    assert "no distance_embedding weights: they are random. transformers 5 ignores" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="fastbert"):
        model = fastbert.BertModel.from_pretrained(tmp_path, position_embedding_type="absolute")
    assert "distance_embedding" not in caplog.text
    ids = torch.randint(1, 40, (2, 6))
    with torch.no_grad():
        torch.testing.assert_close(
            model(ids).last_hidden_state, hf(ids).last_hidden_state, atol=1e-5, rtol=1e-5
        )
    # a checkpoint with its tables (fastbert's own, transformers 4's) loads without the warning
    relative = fastbert.BertModel(fastbert.BertConfig(**CFG, position_embedding_type="relative_key"))
    relative.save_pretrained(tmp_path / "own")
    caplog.clear()
    with caplog.at_level("WARNING", logger="fastbert"):
        fastbert.BertModel.from_pretrained(tmp_path / "own")
    assert "distance_embedding" not in caplog.text
