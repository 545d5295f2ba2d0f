"""The small differences from transformers 5 (issue 24 item 6), each checked against transformers itself:
loading-info types, the size-mismatch exception, when a config is validated, ``dtype`` /
``attn_implementation`` config fields, and an EncoderDecoderCache whose cross-attention part is empty."""

import copy
import dataclasses
import os

import pytest
import torch
from model_helpers import TINY, require_transformers

import fastbert
from fastbert import registry
from fastbert.core.tolerances import assert_close

#: CPU models only (no CUDA path): CI runs it; the GPU check's CUDA tier leaves it out
pytestmark = pytest.mark.cpu_only

transformers = require_transformers()


def save_pair(tmp_path, name="BertForSequenceClassification", **cfg):
    torch.manual_seed(0)
    getattr(transformers, name)(transformers.BertConfig(**TINY, **cfg)).save_pretrained(tmp_path)


@pytest.mark.parametrize("extra_layers", [0, 1])
def test_loading_info_has_transformers_types(tmp_path, extra_layers):
    save_pair(tmp_path, "BertModel")
    kw = dict(output_loading_info=True, num_hidden_layers=TINY["num_hidden_layers"] + extra_layers)
    ours = fastbert.BertForSequenceClassification.from_pretrained(tmp_path, **kw)[1]
    ref = transformers.BertForSequenceClassification.from_pretrained(tmp_path, **kw)[1]
    assert set(ours) == set(ref)
    for key in ref:
        assert type(ours[key]) is type(ref[key]), key
    assert ours["missing_keys"] == ref["missing_keys"]
    assert ours["unexpected_keys"] == ref["unexpected_keys"] == set()
    assert ours["mismatched_keys"] == ref["mismatched_keys"] == set()


def test_size_mismatch_raises_transformers_exception_type(tmp_path):
    save_pair(tmp_path, num_labels=2)
    with pytest.raises(RuntimeError):
        transformers.BertForSequenceClassification.from_pretrained(tmp_path, num_labels=5)
    with pytest.raises(RuntimeError, match=r"classifier.weight.*\(2, 36\).*\(5, 36\)") as info:
        fastbert.BertForSequenceClassification.from_pretrained(tmp_path, num_labels=5)
    assert isinstance(info.value, ValueError)  # also what fastbert raised before (its CLI: one line)
    ours = fastbert.BertForSequenceClassification.from_pretrained(
        tmp_path, num_labels=5, ignore_mismatched_sizes=True, output_loading_info=True
    )[1]
    ref = transformers.BertForSequenceClassification.from_pretrained(
        tmp_path, num_labels=5, ignore_mismatched_sizes=True, output_loading_info=True
    )[1]
    assert ours["mismatched_keys"] == ref["mismatched_keys"]
    assert ours["missing_keys"] == ref["missing_keys"]


def test_config_validated_when_the_model_is_built_as_transformers():
    for lib in (transformers, fastbert):
        config = lib.BertConfig(hidden_size=37)  # 12 heads: made without complaint
        assert config.hidden_size == 37
        with pytest.raises(ValueError, match="37"):
            lib.BertModel(config)


def test_dtype_and_attn_implementation_fields_as_transformers_5():
    for kw in (dict(dtype=torch.float16), dict(dtype="bfloat16"), dict(torch_dtype="float16"), {}):
        ours, ref = fastbert.BertConfig(**kw), transformers.BertConfig(**kw)
        assert ours.dtype == ref.dtype, kw
        assert ours.torch_dtype == ours.dtype
        assert ours.to_dict().get("dtype") == ref.to_dict().get("dtype"), kw
        assert "torch_dtype" not in ours.to_dict()
    ours, ref = (
        fastbert.BertConfig(attn_implementation="eager"),
        transformers.BertConfig(attn_implementation="eager"),
    )
    assert ours._attn_implementation == ref._attn_implementation == "eager"
    assert "attn_implementation" not in ours.to_dict() and "_attn_implementation" not in ours.to_dict()
    assert fastbert.BertConfig()._attn_implementation is None
    model = fastbert.BertModel(fastbert.BertConfig(**TINY, attn_implementation="eager"))
    assert model.attn_implementation == "eager"


def test_from_pretrained_keeps_the_configs_attn_implementation(tmp_path):
    save_pair(tmp_path, "BertModel")
    config = fastbert.BertConfig.from_pretrained(tmp_path)
    config._attn_implementation = "eager"
    assert fastbert.BertModel.from_pretrained(tmp_path, config=config).attn_implementation == "eager"
    model = fastbert.BertModel.from_pretrained(tmp_path, config=config, attn_implementation="sdpa")
    assert model.attn_implementation == "sdpa"  # the keyword wins


def test_encoder_decoder_cache_with_an_empty_cross_part():
    """A decoder step on a cache whose cross-attention part is filled, empty (its keys come from the encoder's
    states: no IndexError) or wholly empty (a first step), judged by the tolerance rule against transformers
    run in float64 on the same cache."""
    import copy

    from transformers.cache_utils import DynamicCache, EncoderDecoderCache

    torch.manual_seed(0)
    config = transformers.BertConfig(**TINY, is_decoder=True, add_cross_attention=True)
    hf = transformers.BertLMHeadModel(config).eval()
    hf64 = copy.deepcopy(hf).double()
    fb = fastbert.from_transformers(hf)
    ids, step = torch.randint(1, 99, (2, 5)), torch.randint(1, 99, (2, 1))
    enc = torch.randn(2, 4, TINY["hidden_size"])

    def logits(model, cache_model, part):
        states = enc.to(cache_model.dtype)
        prefix = cache_model(input_ids=ids, encoder_hidden_states=states, use_cache=True).past_key_values
        if part == "empty":
            past = EncoderDecoderCache(DynamicCache(), DynamicCache())
            return model(
                input_ids=ids, encoder_hidden_states=states, past_key_values=past, use_cache=True
            ).logits
        if part == "cross empty":
            prefix = EncoderDecoderCache(prefix.self_attention_cache, DynamicCache())
        return model(
            input_ids=step, encoder_hidden_states=states, past_key_values=prefix, use_cache=True
        ).logits

    with torch.no_grad():
        for part in ("filled", "cross empty", "empty"):
            ours = logits(fb, hf, part)
            # transformers' reference: a full cache (or, for a first step, no cache at all)
            if part == "empty":
                theirs, ref = (
                    hf(input_ids=ids, encoder_hidden_states=enc).logits,
                    hf64(input_ids=ids, encoder_hidden_states=enc.double()).logits,
                )
            else:
                theirs, ref = logits(hf, hf, "filled"), logits(hf64, hf64, "filled")
            assert_close(ours, theirs, ref, torch.float32, what=part)


@pytest.mark.parametrize(
    ("name", "labels"),
    [
        ("BertForSequenceClassification", lambda b, n: torch.tensor(1)),  # 0-d, a batch of one
        ("BertForSequenceClassification", lambda b, n: torch.tensor([[1]])),  # (B, 1)
        ("BertForTokenClassification", lambda b, n: torch.randint(0, 2, (b * n,))),  # flattened
        ("BertForMaskedLM", lambda b, n: torch.randint(0, 50, (b * n,))),
        ("BertForNextSentencePrediction", lambda b, n: torch.tensor([[1]])),  # (B, 1)
        ("BertForTokenClassification", lambda b, n: torch.randint(0, 2, (b, n, 1))),  # (B, L, 1)
        ("BertForMaskedLM", lambda b, n: torch.randint(0, 50, (b, n, 1))),
    ],
)
def test_label_shapes_transformers_reads_through_view(tmp_path, name, labels):
    """transformers' losses read labels through .view(-1): a 0-d label for a batch of one and flattened
    token labels give its loss here too (they were refused as shapes)."""
    save_pair(tmp_path, name)
    theirs = getattr(transformers, name).from_pretrained(tmp_path).eval()
    ours = getattr(fastbert, name).from_pretrained(tmp_path).eval()
    torch.manual_seed(0)
    ids = torch.randint(1, 50, (1, 7))
    target = labels(*ids.shape)
    with torch.no_grad():
        want = theirs(input_ids=ids, labels=target).loss
        got = ours(input_ids=ids, labels=target).loss
        ref = theirs.double()(input_ids=ids, labels=target).loss
    assert_close(got, want, ref, torch.float32, what="loss")
    with pytest.raises(ValueError, match="labels"):  # a count that fits no reading stays refused
        ours(input_ids=ids, labels=torch.zeros(ids.numel() + 1, dtype=torch.long))


def test_pretraining_targets_with_a_trailing_dim_and_the_deprecated_nsp_keyword(tmp_path):
    """BertForPreTraining's labels (B, L, 1) and next_sentence_label (B, 1), and BertForNextSentencePrediction's
    ``next_sentence_label=`` (transformers 4's deprecated name of ``labels``: a FutureWarning, the same
    loss), as transformers 4.57 reads them."""
    save_pair(tmp_path, "BertForPreTraining")
    theirs = transformers.BertForPreTraining.from_pretrained(tmp_path).eval()
    ours = fastbert.BertForPreTraining.from_pretrained(tmp_path).eval()
    torch.manual_seed(0)
    ids = torch.randint(1, 50, (2, 7))
    labels, nsp = torch.randint(0, 50, (2, 7, 1)), torch.tensor([[0], [1]])
    with torch.no_grad():
        want = theirs(input_ids=ids, labels=labels.view(2, 7), next_sentence_label=nsp.view(2)).loss
        got = ours(input_ids=ids, labels=labels, next_sentence_label=nsp).loss
        ref = theirs.double()(input_ids=ids, labels=labels.view(2, 7), next_sentence_label=nsp.view(2)).loss
    assert_close(got, want, ref, torch.float32, what="loss")
    nsp_model = fastbert.BertForNextSentencePrediction.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        plain = nsp_model(input_ids=ids, labels=nsp.view(2)).loss
        with pytest.warns(FutureWarning, match="next_sentence_label"):
            old = nsp_model(input_ids=ids, next_sentence_label=nsp.view(2)).loss
    assert plain is not None and torch.equal(old, plain)


@pytest.mark.parametrize(
    "name", ["DistilBertModel", "MPNetModel", "BertModel", "RobertaModel", "ElectraModel", "ModernBertModel"]
)
def test_bare_model_output_class_is_transformers(name):
    """Each family's bare model returns transformers' output class (4.57 and 5 agree): DistilBERT's and
    ModernBERT's BaseModelOutput, MPNet's BaseModelOutputWithPooling, ELECTRA's (no pooler)
    BaseModelOutputWithPastAndCrossAttentions, BERT's the pooling-and-cross-attentions output."""
    cfg = dict(
        vocab_size=50, hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=37
    )
    if name == "ModernBertModel":
        cfg.update(pad_token_id=0, bos_token_id=1, eos_token_id=2, cls_token_id=1, sep_token_id=2)
    theirs = getattr(transformers, name)(getattr(transformers, name).config_class(**cfg)).eval()
    ours = getattr(fastbert, name)(getattr(fastbert, name).config_class(**cfg)).eval()
    ids = torch.randint(3, 50, (2, 5))
    with torch.no_grad():
        assert type(ours(input_ids=ids)).__name__ == type(theirs(input_ids=ids)).__name__


@pytest.mark.parametrize("model_type", registry.supported_model_types())
def test_training_attentions_are_the_weights_after_dropout(model_type):
    """transformers returns the attention weights that multiplied V: after dropout, in training. fastbert
    returned them before dropout (rows summing to 1), so attention distillation read other values."""
    from model_helpers import tiny_family_config

    field = (
        "attention_dropout" if model_type in ("distilbert", "modernbert") else "attention_probs_dropout_prob"
    )
    config = tiny_family_config(model_type, **{field: 0.5}, attn_implementation="eager")
    model = registry.model_class(model_type, "base")(config).train()
    ids = torch.randint(5, 100, (2, 12), generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    attentions = model(ids, output_attentions=True).attentions
    for probs in attentions:
        assert (probs == 0).float().mean() > 0.3  # dropped entries
        kept = probs[probs != 0]
        assert kept.max() > 1.0 or not torch.allclose(probs.sum(-1), torch.ones(()))  # kept ones scaled by 2


def test_training_attentions_equal_transformers_under_one_seed():
    transformers = require_transformers()
    cfg = dict(TINY, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.5)
    config = transformers.BertConfig(**cfg)
    config._attn_implementation = "eager"
    torch.manual_seed(0)
    hf = transformers.BertModel(config).train()
    ours = fastbert.from_transformers(hf, attn_implementation="eager").train()
    ids = torch.randint(5, TINY["vocab_size"], (2, 9), generator=torch.Generator().manual_seed(1))
    ref = copy.deepcopy(hf).double()  # the parity rule's reference: transformers in float64, the same masks
    outs = []
    for model in (hf, ours, ref):
        torch.manual_seed(3)
        outs.append(model(ids, output_attentions=True))
    theirs, mine, exact = outs
    assert_close(mine.last_hidden_state, theirs.last_hidden_state, exact.last_hidden_state, torch.float32)
    assert len(mine.attentions) == len(theirs.attentions) == len(exact.attentions)
    for i, (a, b, c) in enumerate(zip(mine.attentions, theirs.attentions, exact.attentions)):
        assert_close(a, b, c, torch.float32, what=f"attentions[{i}]")


@pytest.mark.parametrize("kind", ["relative_key", "relative_key_query"])
def test_relative_positions_with_cross_attention_have_transformers_parameter_names(kind):
    """transformers 4 builds cross-attention with absolute positions: fastbert added an unused
    crossattention.self.distance_embedding, reported as missing / unexpected keys either way."""
    transformers = require_transformers()
    cfg = dict(TINY, is_decoder=True, add_cross_attention=True, position_embedding_type=kind)
    ours = set(fastbert.BertLMHeadModel(fastbert.BertConfig(**cfg)).state_dict())
    assert not any("crossattention.self.distance_embedding" in k for k in ours)
    assert any("attention.self.distance_embedding" in k for k in ours)
    if "relative" in getattr(transformers.BertConfig(**cfg), "position_embedding_type", ""):
        theirs = set(transformers.BertLMHeadModel(transformers.BertConfig(**cfg)).state_dict())
        if any("distance_embedding" in k for k in theirs):  # transformers 4: relative positions implemented
            assert ours == theirs


def test_transformers_4_positional_order_is_refused_by_name():
    """transformers 4's forward had head_mask fifth: (ids, mask, tt, None, None, None, labels) put labels into
    output_attentions here, and the loss silently came back None."""
    model = fastbert.BertForSequenceClassification(fastbert.BertConfig(**TINY)).eval()
    ids = torch.randint(5, TINY["vocab_size"], (2, 6))
    with pytest.raises(TypeError, match="output_attentions got a tensor.*transformers 4's positional order"):
        model(ids, torch.ones_like(ids), torch.zeros_like(ids), None, None, None, torch.tensor([0, 1]))
    out = model(ids, torch.ones_like(ids), torch.zeros_like(ids), None, None, torch.tensor([0, 1]))
    assert out.loss is not None  # transformers 5's order
    with pytest.raises(ValueError, match="values other than 1"):
        model(ids, head_mask=torch.full((TINY["num_hidden_layers"], TINY["num_attention_heads"]), 0.5))


@pytest.mark.parametrize("name", ["BertModel", "RobertaModel", "ElectraModel", "DistilBertModel"])
def test_a_row_longer_than_the_position_table_with_explicit_position_ids(tmp_path, name):
    """A row longer than ``max_position_embeddings`` whose explicit ``position_ids`` stay within the table
    (padding-free rows that restart their positions) and no ``token_type_ids``: transformers gathers its
    all-zero token-type buffer by those positions; fastbert sliced the buffer to the row's length and failed
    with a bare RuntimeError of ``expand``."""
    cfg = dict(TINY, max_position_embeddings=24, pad_token_id=1)
    if name == "DistilBertModel":
        cfg = dict(vocab_size=99, dim=36, n_layers=2, n_heads=3, hidden_dim=37, max_position_embeddings=24)
    torch.manual_seed(0)
    getattr(transformers, name)(getattr(transformers, name).config_class(**cfg)).save_pretrained(tmp_path)
    theirs = getattr(transformers, name).from_pretrained(tmp_path).eval()
    ids = torch.randint(3, 99, (2, 30))
    positions = (torch.arange(30) % 20 + 2)[None]  # (1, L), as transformers broadcasts it
    mask = torch.ones(2, 30, dtype=torch.long)  # with a mask, transformers 5 attends across the restart too
    mask[1, 26:] = 0
    inputs = dict(input_ids=ids, attention_mask=mask, position_ids=positions)
    for backend in ("eager", "sdpa"):
        ours = getattr(fastbert, name).from_pretrained(tmp_path, attn_implementation=backend).eval()
        with torch.no_grad():
            got = ours(**inputs).last_hidden_state
            want = theirs(**inputs).last_hidden_state
            ref = theirs.double()(**inputs).last_hidden_state
            theirs.float()
        assert_close(got, want, ref, torch.float32, mask.bool(), what=f"{name} {backend}")


@pytest.mark.parametrize(
    "name", ["BertForMultipleChoice", "RobertaForMultipleChoice", "ModernBertForMultipleChoice"]
)
def test_multiple_choice_flattens_as_transformers_view(tmp_path, name):
    """transformers' multiple-choice heads flatten every input with ``view(-1, t.size(-1))`` (embeds:
    ``view(-1, L, H)``), so one (1, L) row of ``position_ids`` and a mask already flattened to
    (batch * choices, L) work; fastbert flattened all but the first two dimensions, which made them 1-D and
    refused them. (B, C, L) ids with (B, L, H) embeds is still refused by name."""
    cfg = dict(TINY, pad_token_id=1)
    if name == "ModernBertForMultipleChoice":
        cfg = dict(TINY, pad_token_id=0, bos_token_id=1, eos_token_id=2, cls_token_id=1, sep_token_id=2)
        cfg.pop("type_vocab_size")
    torch.manual_seed(0)
    getattr(transformers, name)(getattr(transformers, name).config_class(**cfg)).save_pretrained(tmp_path)
    theirs = getattr(transformers, name).from_pretrained(tmp_path).eval()
    ours = getattr(fastbert, name).from_pretrained(tmp_path).eval()
    ids = torch.randint(3, 99, (2, 3, 7))
    mask = torch.ones(6, 7, dtype=torch.long)
    mask[4, 5:] = 0
    inputs = dict(input_ids=ids, attention_mask=mask, position_ids=(torch.arange(7) + 2)[None])
    inputs["labels"] = torch.tensor([2, 0])
    with torch.no_grad():
        got, want = ours(**inputs), theirs(**inputs)
        ref = theirs.double()(**inputs)
    for key in ("logits", "loss"):
        assert_close(got[key], want[key], ref[key], torch.float32, what=f"{name} {key}")
    with pytest.raises(ValueError, match="num_choices"):
        ours(inputs_embeds=torch.randn(2, 7, 36))


def test_outputs_rebuilt_from_a_mapping_or_pairs_as_transformers():
    """transformers' ModelOutput takes its fields as one mapping or as (name, value) pairs in the first
    argument: accelerate's convert_to_fp32 rebuilds outputs as ``type(out)(dict)``, nn.DataParallel's gather
    as ``type(out)((k, v) for k in out)`` (fastbert took the pairs as the loss)."""
    torch.manual_seed(0)
    model = fastbert.BertForSequenceClassification(fastbert.BertConfig(**TINY)).eval()
    out = model(input_ids=torch.tensor([[5, 6, 7]]), labels=torch.tensor([1]))
    for rebuilt in (type(out)(dict(out)), type(out)((k, out[k]) for k in out), type(out)(list(out.items()))):
        assert list(rebuilt.keys()) == ["loss", "logits"], rebuilt
        assert rebuilt.loss is out.loss and rebuilt[1] is out.logits and rebuilt.hidden_states is None
    plain = fastbert.outputs.BaseModelOutput(iter([out.logits]))  # an iterator of values: its items
    assert plain.last_hidden_state == [out.logits]


def test_outputs_are_pytree_nodes_as_transformers():
    """Every output class is a pytree node whose leaves are its set fields, as transformers registers its
    ModelOutputs (DistributedDataParallel(static_graph=True) reads outputs through pytree; an
    unregistered output was one opaque leaf)."""
    import torch.utils._pytree as pytree

    torch.manual_seed(0)
    ours = fastbert.BertForSequenceClassification(fastbert.BertConfig(**TINY)).eval()
    out = ours(input_ids=torch.tensor([[5, 6, 7]]), labels=torch.tensor([1]), output_hidden_states=True)
    theirs = transformers.modeling_outputs.SequenceClassifierOutput(**out)
    leaves, spec = pytree.tree_flatten(out)
    assert len(leaves) == len(pytree.tree_leaves(theirs)) == 2 + len(out.hidden_states)
    assert all(a is b for a, b in zip(leaves, pytree.tree_leaves(theirs)))
    rebuilt = pytree.tree_unflatten(leaves, spec)
    assert type(rebuilt) is type(out) and list(rebuilt.keys()) == ["loss", "logits", "hidden_states"]
    assert [str(path[0]) for path, _ in pytree.tree_flatten_with_path(out)[0]][:2] == [
        "['loss']",
        "['logits']",
    ]
    # every output class, the cache ones (past_key_values a field of their own) and a user's subclass too
    classes = [c for c in vars(fastbert.outputs).values() if isinstance(c, type)]
    classes = [
        c
        for c in classes
        if issubclass(c, fastbert.outputs.ModelOutput) and c is not fastbert.outputs.ModelOutput
    ]
    assert len(classes) > 10
    for cls in classes:
        first = fields_of(cls)[0]
        leaves, spec = pytree.tree_flatten(cls(**{first: torch.ones(1)}))
        assert len(leaves) == 1 and type(pytree.tree_unflatten(leaves, spec)) is cls, cls

    @dataclasses.dataclass
    class Mine(fastbert.outputs.MaskedLMOutput):
        extra: torch.Tensor | None = None

    assert len(pytree.tree_leaves(Mine(logits=torch.ones(1), extra=torch.ones(2)))) == 2


def fields_of(cls) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


_DDP_CHILD = """
import sys, torch, torch.distributed as dist
import fastbert
rank, store, out = int(sys.argv[1]), sys.argv[2], sys.argv[3]
torch.set_num_threads(1)
dist.init_process_group("gloo", init_method="file://" + store, rank=rank, world_size=2)
torch.manual_seed(0)
config = fastbert.BertConfig(vocab_size=99, hidden_size=36, num_hidden_layers=2, num_attention_heads=3,
                             intermediate_size=37, max_position_embeddings=64, attn_implementation="sdpa")
model = fastbert.BertForSequenceClassification(config)
ddp = torch.nn.parallel.DistributedDataParallel(model, static_graph=True)
torch.manual_seed(rank + 1)  # each rank its own batch
ddp(input_ids=torch.randint(3, 90, (2, 7)), labels=torch.tensor([0, 1])).loss.backward()
torch.save(model.classifier.weight.grad, out)
dist.destroy_process_group()
"""


def test_ddp_static_graph_averages_the_gradients_of_the_ranks(tmp_path):
    """DistributedDataParallel(static_graph=True) over two CPU (gloo) processes, each with its own batch: both
    ranks end the step with the same (averaged) gradient, as with transformers' model. With the output not a
    pytree node, DDP never averaged them: each rank kept its own gradient and the replicas drifted apart."""
    import subprocess
    import sys

    if not torch.distributed.is_available():
        pytest.skip("this torch build has no torch.distributed")
    script = tmp_path / "child.py"
    script.write_text(_DDP_CHILD)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    if sys.platform.startswith("linux"):  # gloo's sockets on the loopback interface only
        env["GLOO_SOCKET_IFNAME"] = "lo"
    children = [
        subprocess.Popen(
            [
                sys.executable,
                str(script),
                str(rank),
                str(tmp_path / "store"),
                str(tmp_path / f"grad{rank}.pt"),
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for rank in range(2)
    ]
    try:
        for child in children:
            output, _ = child.communicate(timeout=300)
            assert child.returncode == 0, output.decode()[-3000:]
    finally:  # a rank that failed or hung leaves no process behind (the other waits for it forever)
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()
    grads = [torch.load(tmp_path / f"grad{rank}.pt") for rank in range(2)]
    assert grads[0].abs().sum() > 0
    torch.testing.assert_close(grads[0], grads[1])
