"""Big-model loading: accelerate's init_empty_weights + load_checkpoint_and_dispatch, from_pretrained with
low_cpu_mem_usage / device_map give a plain load's outputs; a meta-device build + to_empty + post_init
recomputes every buffer (never uninitialised memory)."""

import pytest
import torch
from model_helpers import TINY, perturb_norms_and_biases

import fastbert

accelerate = pytest.importorskip("accelerate")  # the test extra

HEADS = ["BertForMaskedLM", "BertForSequenceClassification", "BertForQuestionAnswering"]


def saved(name, tmp_path):
    torch.manual_seed(0)
    model = perturb_norms_and_biases(getattr(fastbert, name)(fastbert.BertConfig(**TINY)).eval())
    model.save_pretrained(tmp_path)
    return model


def batch():
    g = torch.Generator().manual_seed(4)
    ids = torch.randint(1, 99, (2, 9), generator=g)
    mask = torch.ones(2, 9, dtype=torch.long)
    mask[1, 6:] = 0
    return dict(input_ids=ids, attention_mask=mask, token_type_ids=(torch.arange(9) > 4).long().expand(2, 9))


def outputs(model):
    with torch.no_grad():
        out = model(**batch())
    return [t for t in out.to_tuple() if isinstance(t, torch.Tensor)]


def assert_same(model, ref):
    for a, b in zip(outputs(model), outputs(ref), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def check_buffers(model):
    emb = (getattr(model, "bert", None) or model).embeddings
    n = emb.position_ids.shape[-1]
    assert torch.equal(emb.position_ids, torch.arange(n, device=emb.position_ids.device).expand(1, -1))
    assert not emb.token_type_ids.any()


def fused(model):
    att = (getattr(model, "bert", None) or model).encoder.layer[0].attention.self
    with torch.no_grad():
        return att.fused_qkv()[0].data_ptr() == att.query.weight.data_ptr()


@pytest.mark.parametrize("name", HEADS)
@pytest.mark.parametrize("device_map", ["auto", {"": "cpu"}], ids=["auto", "all-cpu"])
def test_init_empty_weights_and_load_checkpoint_and_dispatch(name, device_map, tmp_path):
    ref = saved(name, tmp_path)
    with accelerate.init_empty_weights():
        model = getattr(fastbert, name)(fastbert.BertConfig(**TINY))
    assert next(model.parameters()).is_meta
    model.tie_weights()  # accelerate's documented step (transformers' models need it too)
    model = accelerate.load_checkpoint_and_dispatch(model, str(tmp_path), device_map=device_map).eval()
    assert not any(p.is_meta for p in model.parameters())
    check_buffers(model)
    assert fused(model)  # the parameters accelerate put in place are laid out for the fused GEMM again
    assert_same(model.cpu(), ref)  # "auto" on a GPU machine: one device, so no hooks, a plain move back


@pytest.mark.parametrize(
    "kwargs", [dict(low_cpu_mem_usage=True), dict(device_map="cpu"), dict(device_map="auto")], ids=str
)
def test_from_pretrained_big_model_keywords(kwargs, tmp_path):
    ref = saved("BertForMaskedLM", tmp_path)
    model = fastbert.BertForMaskedLM.from_pretrained(tmp_path, **kwargs)
    on_gpu = torch.cuda.is_available() and kwargs.get("device_map") == "auto"
    assert model.device.type == ("cuda" if on_gpu else "cpu")
    check_buffers(model)
    assert fused(model)
    assert_same(model.cpu(), ref)


@pytest.mark.parametrize("name", ["BertModel", "BertForPreTraining", "BertLMHeadModel"])
def test_meta_build_to_empty_post_init_recomputes_buffers(name):
    config = fastbert.BertConfig(**TINY, is_decoder=name == "BertLMHeadModel")
    with torch.device("meta"):
        model = getattr(fastbert, name)(config)
    model = model.to_empty(device="cpu")
    emb = (getattr(model, "bert", None) or model).embeddings
    with torch.no_grad():  # what uninitialised memory may hold
        emb.position_ids.fill_(123456)
        emb.token_type_ids.fill_(-7)
        for p in model.parameters():
            p.fill_(float("nan"))
    model.post_init()
    check_buffers(model)
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert fused(model)
    out = outputs(model.eval())
    assert all(torch.isfinite(t).all() for t in out)
    # _init_weights alone (what transformers' init_weights applies to every module) does the same
    with torch.no_grad():
        emb.position_ids.fill_(-1)
    model.apply(model._init_weights)
    check_buffers(model)


def test_loading_after_a_meta_build_into_the_same_storage(tmp_path):
    """load_state_dict(assign=True) into a meta-built model (transformers' low-memory path) keeps the
    outputs and restores the fused layout."""
    ref = saved("BertForSequenceClassification", tmp_path)
    with torch.device("meta"):
        model = fastbert.BertForSequenceClassification(fastbert.BertConfig(**TINY))
    model.load_state_dict(ref.state_dict(), assign=True, strict=False)
    emb = model.bert.embeddings
    for name, buf in list(emb.named_buffers()):  # non-persistent: never in a state dict, still meta
        emb.register_buffer(name, torch.empty_like(buf, device="cpu").fill_(99), persistent=False)
    model._init_weights(emb)  # transformers' way: _init_weights on the embeddings recomputes them
    check_buffers(model)
    assert fused(model.eval())
    assert_same(model, ref)


@pytest.mark.parametrize("model_type", ["bert", "distilbert", "electra", "roberta", "mpnet", "modernbert"])
def test_meta_build_to_empty_load_state_dict_without_post_init(model_type):
    """torch's meta-device recipe (build on meta, ``to_empty``, ``load_state_dict``) without ``post_init``:
    the non-persistent position / token-type buffers hold whatever the memory held, and a call without
    ``position_ids`` / ``token_type_ids`` gives the plain model's outputs all the same (fastbert read its
    default ids from those buffers: an IndexError, or other numbers where the garbage was in range)."""
    from model_helpers import tiny_family_config

    from fastbert import registry

    config = tiny_family_config(model_type)
    cls = registry.model_class(model_type, "base")
    torch.manual_seed(0)
    ref = perturb_norms_and_biases(cls(config)).eval()
    with torch.device("meta"):
        model = cls(config)
    model = model.to_empty(device="cpu")
    with torch.no_grad():
        for buffer in model.buffers():
            buffer.fill_(3)  # in range of every table: silently other positions / token types
    model.load_state_dict(ref.state_dict())
    ids = torch.randint(5, 99, (2, 9), generator=torch.Generator().manual_seed(4))
    mask = torch.ones(2, 9, dtype=torch.long)
    mask[1, 6:] = 0
    with torch.no_grad():
        got, want = model.eval()(ids, attention_mask=mask), ref(ids, attention_mask=mask)
    torch.testing.assert_close(got.last_hidden_state, want.last_hidden_state, rtol=0, atol=0)
