"""``torch.compile(model)`` on the CPU: compiled once per input kind, never again per call.

A global counter mutated on every forward (``padding.HOST_READS`` until issue 28) is a guard that fails on
every call: each call recompiled until the cache limit and the compiled model fell back to eager. After a
warm-up on the inputs used, ``error_on_recompile`` turns any further recompilation into an error.
"""

import copy

import pytest
import torch
from model_helpers import tiny_family_config

import fastbert
from fastbert import registry
from fastbert.core import padding
from fastbert.core.tolerances import assert_close

TINY = dict(
    vocab_size=99,
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=4,
    intermediate_size=37,
    max_position_embeddings=64,
)


def _inputs():
    ids = torch.randint(3, 99, (3, 8))  # never a padding id
    mask = torch.ones(3, 8, dtype=torch.long)
    mask[1, 5:] = 0
    mask[2, 2:] = 0
    return [dict(input_ids=ids), dict(input_ids=ids, attention_mask=mask)]  # dense, padded


def _check_no_recompile(backend: str, model=None, warmup_rounds: int = 2, rounds: int = 3):
    import torch._dynamo

    torch._dynamo.reset()
    model = model or fastbert.BertModel(fastbert.BertConfig(**TINY)).eval()
    compiled = torch.compile(model, backend=backend)
    batches = _inputs()
    with torch.no_grad():  # the uncompiled model's error against float64 bounds the compiled one's (the rule)
        plain = [model(**b).last_hidden_state for b in batches]
        refs = [copy.deepcopy(model).double()(**b).last_hidden_state for b in batches]
        for _ in range(warmup_rounds):  # each kind of input compiles its frames (graph breaks at host reads)
            for b in batches:
                compiled(**b)
        with torch._dynamo.config.patch(error_on_recompile=True):
            for _ in range(rounds):
                for b, theirs, ref in zip(batches, plain, refs):
                    out = compiled(**b).last_hidden_state
                    mask = b.get("attention_mask")
                    assert_close(out, theirs, ref, torch.float32, None if mask is None else mask.bool())
    torch._dynamo.reset()


@pytest.mark.parametrize("backend", ["eager", "aot_eager"])
def test_compiled_model_does_not_recompile_per_call(backend):
    _check_no_recompile(backend)


@pytest.mark.parametrize("model_type", [t for t in registry.supported_model_types() if t != "bert"])
def test_compiled_family_does_not_recompile_per_call(model_type):
    """Every family (RoBERTa's positions from the padded ids, MPNet's bias table per forward, DistilBERT's
    missing token types) compiles once per input kind too."""
    torch.manual_seed(0)
    model = registry.model_class(model_type, "base")(tiny_family_config(model_type, width=32)).eval()
    _check_no_recompile("eager", model)


def test_host_reads_are_counted_in_eager_only():
    model = fastbert.BertModel(fastbert.BertConfig(**TINY)).eval()
    dense, padded = _inputs()
    with torch.no_grad(), padding.count_host_reads() as reads:
        model(**padded)
    assert reads.count == 1  # validation and the mask's lengths: one read
    with torch.no_grad(), padding.count_host_reads() as reads:
        torch.compile(model, backend="eager")(**dense)
    assert reads.count == 0  # under compile the counters are not touched (no guard on them)


def test_an_eager_forward_while_another_thread_compiles_runs_as_eager(monkeypatch):
    """torch holds its compile flag up process-wide for a whole compile session: an eager forward meanwhile
    (a server's second worker while the first compiles) still counts its host reads, writes into the
    workspace and reuses the fused query/key/value views; with the flag read, it did none of these (slower,
    and host reads uncounted)."""
    from fastbert.core import workspace

    torch.manual_seed(0)
    model = fastbert.BertModel(fastbert.BertConfig(**TINY)).eval()
    inputs = _inputs()[1]  # padded: packed, so it reads the lengths on the host
    scopes = []
    real_scope = workspace.scope
    monkeypatch.setattr(workspace, "scope", lambda *a, **k: scopes.append(1) or real_scope(*a, **k))

    def run():
        with padding.count_host_reads() as reads, torch.no_grad():
            out = model(**inputs).last_hidden_state
        return out, reads.count

    expected, eager_reads = run()
    assert eager_reads > 0 and scopes
    views = model.encoder.layer[0].attention.self.__dict__.get("_fused_views")
    assert views is not None
    scopes.clear()
    monkeypatch.setattr(torch.compiler, "_is_compiling_flag", True)  # another thread's compile session
    assert torch.compiler.is_compiling()
    got, reads = run()
    assert torch.equal(got, expected) and reads == eager_reads and scopes
    assert (
        model.encoder.layer[0].attention.self.__dict__.get("_fused_views") is views
    )  # reused, not concatenated


def test_compiled_packed_rows_attend_within_each_sequence():
    """Padding-free packed rows (``DataCollatorWithFlattening``: position_ids restarting, no attention_mask)
    attend within each sequence in eager mode, as transformers 5.25 does (its mask comes from the positions
    under torch.compile as well). Under ``torch.compile`` the split was switched off: the compiled model
    attended across the row, other numbers than the eager model's, silently. It now splits there too (graph
    breaks at the host reads of the positions), matching eager, and compiles once per input kind."""
    import torch._dynamo

    torch.manual_seed(0)
    model = fastbert.BertModel(fastbert.BertConfig(**TINY)).eval()
    ids = torch.randint(3, 99, (2, 10))
    pos = torch.tensor([[0, 1, 2, 3, 0, 1, 2, 0, 1, 2], [0, 1, 2, 3, 4, 5, 0, 1, 2, 3]])
    batches = [dict(input_ids=ids, position_ids=pos), dict(input_ids=ids)]
    torch._dynamo.reset()
    compiled = torch.compile(model, backend="eager")
    with torch.no_grad():
        plain = [model(**b).last_hidden_state for b in batches]
        alone = model(input_ids=ids[:1, 4:7], position_ids=pos[:1, 4:7]).last_hidden_state
        assert torch.allclose(plain[0][:1, 4:7], alone, atol=1e-5, rtol=0)  # eager: the sequence alone
        for _ in range(2):
            for b in batches:
                compiled(**b)
        with torch._dynamo.config.patch(error_on_recompile=True):
            for _ in range(2):
                for b, theirs in zip(batches, plain):
                    # backend="eager" runs the same torch ops between its graph breaks: the same bits
                    assert torch.equal(compiled(**b).last_hidden_state, theirs)
    torch._dynamo.reset()


def _graphs(model, inputs: dict, dynamic: bool = False) -> tuple[int, set[str]]:
    """The graphs one compiled forward on ``inputs`` builds (``torch._dynamo.explain``'s graph_count) and the
    kinds of its graph breaks (the first line of each reason Dynamo counts)."""
    import torch._dynamo
    from torch._dynamo.testing import CompileCounter
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    counter = CompileCounter()
    with torch.no_grad():
        torch.compile(model, backend=counter, dynamic=dynamic)(**inputs)
    kinds = {reason.split("\n")[0] for reason in counters["graph_break"]}
    torch._dynamo.reset()
    return counter.frame_count, kinds


def test_dynamic_compile_takes_the_longest_length_in_the_graph():
    """``max(lengths, default=0)`` of a packing: Dynamo cannot handle the keyword once the lengths are symbolic
    (``dynamic=True``, or the automatic dynamic shapes of a second batch of other lengths): a warning ("got an
    unexpected keyword argument 'default'") and a graph break at every padded forward."""
    model = fastbert.BertModel(fastbert.BertConfig(**TINY)).eval()
    _, kinds = _graphs(model, _inputs()[1], dynamic=True)
    assert not any("builtin" in k for k in kinds), kinds


@pytest.mark.parametrize("dynamic", [False, True])
def test_compiled_padded_batch_packs_without_a_graph_break_at_nonzero(dynamic):
    """The packing's indices of the real tokens: their count is known on the host (the forward's one host read
    of the lengths), so under ``torch.compile`` they come from ``nonzero_static`` as on CUDA, not from
    ``nonzero``, whose output shape depends on the data: a graph break in every padded forward (5 graphs, 7 with
    ``dynamic=True``; now 3). The eager CPU forward keeps ``nonzero`` (same indices)."""
    model = fastbert.BertModel(fastbert.BertConfig(**TINY)).eval()
    graphs, kinds = _graphs(model, _inputs()[1], dynamic=dynamic)
    assert "Dynamic shape operator" not in kinds, kinds
    assert graphs <= 3


def test_compiled_padded_batch_reads_packed_outputs_beside_its_host_read():
    """``packed_outputs()`` is a ContextVar, which Dynamo cannot read: a graph break wherever the forward reads
    it. Read after the layers (whether to re-pad), it split a padded forward's graph in two; read beside the
    forward's host read (a break anyway), nothing is split: 2 graphs (was 3). The compiled model still follows
    it at every call, as the eager one: packed (tokens, hidden) inside it, padded outside, no recompile."""
    import torch._dynamo

    torch.manual_seed(0)
    model = fastbert.BertModel(fastbert.BertConfig(**TINY)).eval()
    padded = _inputs()[1]
    graphs, _ = _graphs(model, padded)
    assert graphs == 2
    compiled = torch.compile(model, backend="eager")
    with torch.no_grad():
        plain = model(**padded).last_hidden_state
        with padding.packed_outputs():
            packed = model(**padded).last_hidden_state
        assert plain.dim() == 3 and packed.dim() == 2
        for _ in range(2):
            compiled(**padded)
            with padding.packed_outputs():
                compiled(**padded)
        with torch._dynamo.config.patch(error_on_recompile=True):
            for _ in range(2):
                assert torch.equal(compiled(**padded).last_hidden_state, plain)
                with padding.packed_outputs():
                    assert torch.equal(compiled(**padded).last_hidden_state, packed)
    torch._dynamo.reset()


@pytest.mark.parametrize("padded", [False, True])
def test_compiled_relative_bias_attention_reads_no_bounds_per_layer(padded):
    """MPNet's packed attention (``attention_ref.attention_varlen``, per sequence) read the sequences' bounds
    from the device in every layer, though the packing holds them on the host: under ``torch.compile`` a graph
    break in the layers' loop, so Dynamo ran the whole loop eagerly (11 graphs). Now 2: the forward's one host
    read. Its numbers, and no recompiles, are ``test_compiled_family_does_not_recompile_per_call``'s."""
    torch.manual_seed(0)
    model = registry.model_class("mpnet", "base")(tiny_family_config("mpnet", width=32)).eval()
    graphs, kinds = _graphs(model, _inputs()[int(padded)])
    assert graphs == 2, kinds


@pytest.mark.parametrize("padded", [False, True])
def test_compiled_sliding_window_decides_its_band_mask_on_the_host(padded):
    """ModernBERT's local layers on the CPU (``ops._packed_window_sdpa``): whether a chunk's band mask is needed
    was ``bool(mask.all())``, a device read per chunk and layer, known from the chunk's bounds alone: under
    ``torch.compile`` graph breaks in the layers' loop (11 graphs with the global layers' bounds fixed). Now 3."""
    torch.manual_seed(0)
    model = registry.model_class("modernbert", "base")(tiny_family_config("modernbert", width=32)).eval()
    graphs, kinds = _graphs(model, _inputs()[int(padded)])
    assert graphs == 3, kinds


def test_compiled_packed_rows_compile_their_split():
    """Packed rows (position ids restarting) read ``Packing.mask`` to split the rows into sequences: a
    ``functools.cached_property``, whose lock (before Python 3.12) Dynamo cannot enter, so ``torch.compile`` ran
    that frame eagerly (10 graphs). Cached by hand: 8 (the position ids' and the sequences' host reads)."""
    model = fastbert.BertModel(fastbert.BertConfig(**TINY)).eval()
    ids = torch.randint(3, 99, (2, 10))
    pos = torch.tensor([[0, 1, 2, 3, 0, 1, 2, 0, 1, 2], [0, 1, 2, 3, 4, 5, 0, 1, 2, 3]])
    graphs, kinds = _graphs(model, dict(input_ids=ids, position_ids=pos))
    assert graphs <= 8, kinds


_FAMILY_GRAPHS = {"modernbert": 3}  # its final norm runs after the layers' frame returns (a nested break)


@pytest.mark.parametrize("model_type", registry.supported_model_types())
def test_compiled_family_graph_counts(model_type):
    """The graphs a compiled base model builds on a dense and on a padded batch: the forward's one host read
    (validation and lengths) splits it in two; nothing else does (ModernBERT: 3)."""
    torch.manual_seed(0)
    model = registry.model_class(model_type, "base")(tiny_family_config(model_type, width=32)).eval()
    for inputs in _inputs():
        graphs, kinds = _graphs(model, inputs)
        assert graphs == _FAMILY_GRAPHS.get(model_type, 2), (sorted(inputs), kinds)
