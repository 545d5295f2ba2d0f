"""``generate``'s length rules on BertLMHeadModel, against transformers' ``generate`` for the same weights.

transformers 4.57 and 5 (``_prepare_generated_length`` / ``_validate_generated_length`` in
generation/utils.py): ``max_new_tokens`` wins over ``max_length`` (a logged warning when both are set); with no
length set anywhere, "by default let's always generate 20 new tokens" (``max_length`` = prompt + 20, capped at
``max_position_embeddings``), with a UserWarning recommending ``max_new_tokens`` (5 only: 4.57's check compares
the already-extended length with 20, so it stays silent); a prompt as long as ``max_length`` is a ValueError.
The expected values are the installed transformers 5's; 4.57 gives the same shapes and tokens here (it also
treats a generation config's ``max_length=20`` as the default: not tested, fastbert follows 5).
"""

from __future__ import annotations

import logging
import warnings

import pytest
import torch

import fastbert
from fastbert.generation import GenerationConfig
from tests.model_helpers import TINY, require_transformers

transformers = require_transformers()


def _pair(**overrides):
    cfg = dict(TINY, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, is_decoder=True, **overrides)
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        hf = transformers.BertLMHeadModel(transformers.BertConfig(**cfg)).eval()
        fb = fastbert.BertLMHeadModel(fastbert.BertConfig(**cfg)).eval()
    _, unexpected = fb.load_state_dict(hf.state_dict(), strict=False)
    assert not unexpected
    return hf, fb


@pytest.fixture(scope="module")
def lm_pair():
    return _pair()


def _generate(model, ids, **kwargs):
    """(tokens or the exception, [UserWarning messages])."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            out = model.generate(ids, **kwargs)
        except ValueError as e:
            out = e
    return out, [str(w.message) for w in caught if issubclass(w.category, UserWarning)]


def _length_warnings(messages):
    return [m for m in messages if "model-agnostic default `max_length`" in m]


@pytest.mark.parametrize("prompt", [1, 3, 30])
def test_default_length_is_20_new_tokens_as_transformers(lm_pair, prompt):
    hf, fb = lm_pair
    ids = torch.randint(3, TINY["vocab_size"], (2, prompt), generator=torch.Generator().manual_seed(prompt))
    theirs, their_warnings = _generate(hf, ids)
    ours, our_warnings = _generate(fb, ids)
    assert theirs.shape == (2, prompt + 20)  # transformers 4.57 too
    assert torch.equal(ours, theirs)
    expected = f"Using the model-agnostic default `max_length` (={prompt + 20})"
    assert [m[: len(expected)] for m in _length_warnings(their_warnings)] == [expected]
    assert _length_warnings(our_warnings) == _length_warnings(their_warnings)


def test_default_length_capped_at_max_position_embeddings():
    hf, fb = _pair(max_position_embeddings=12)
    ids = torch.randint(3, TINY["vocab_size"], (1, 5), generator=torch.Generator().manual_seed(1))
    theirs, their_warnings = _generate(hf, ids)
    ours, our_warnings = _generate(fb, ids)
    assert theirs.shape == (1, 12)
    assert torch.equal(ours, theirs)
    assert _length_warnings(our_warnings) == _length_warnings(their_warnings) != []
    # a prompt that already fills the positions: nothing can be generated
    full = torch.randint(3, TINY["vocab_size"], (1, 12))
    theirs, _ = _generate(hf, full)
    ours, _ = _generate(fb, full)
    assert isinstance(theirs, ValueError) and isinstance(ours, ValueError)
    assert str(ours) == str(theirs)


@pytest.mark.parametrize(
    "where",
    ["call", "generation_config", "model_generation_config", "call_20", "model_generation_config_20"],
)
def test_max_length_set_anywhere_is_the_total_length(where):
    hf, fb = _pair()
    length = 20 if where.endswith("_20") else 9
    ids = torch.randint(3, TINY["vocab_size"], (1, 3), generator=torch.Generator().manual_seed(2))
    kwargs: dict = {}
    if where.startswith("call"):
        kwargs = dict(max_length=length)
    elif where == "generation_config":
        kwargs = dict(generation_config=GenerationConfig(max_length=length))
        hf_kwargs = dict(generation_config=transformers.GenerationConfig(max_length=length))
    else:
        fb.generation_config.max_length = length
        hf.generation_config.max_length = length
    theirs, their_warnings = _generate(hf, ids, **(hf_kwargs if where == "generation_config" else kwargs))
    ours, our_warnings = _generate(fb, ids, **kwargs)
    assert theirs.shape == (1, length)  # 4.57: (1, 23) for a generation config's max_length=20
    assert torch.equal(ours, theirs)
    assert _length_warnings(our_warnings) == _length_warnings(their_warnings) == []


@pytest.mark.parametrize("max_length", [3, 2])
def test_prompt_as_long_as_max_length_is_refused(lm_pair, max_length):
    hf, fb = lm_pair
    ids = torch.randint(3, TINY["vocab_size"], (1, 3))
    theirs, _ = _generate(hf, ids, max_length=max_length)
    ours, _ = _generate(fb, ids, max_length=max_length)
    assert isinstance(theirs, ValueError) and isinstance(ours, ValueError)
    assert str(ours) == str(theirs)
    assert str(ours).startswith(f"Input length of input_ids is 3, but `max_length` is set to {max_length}.")


def test_max_new_tokens_wins_over_max_length_with_a_logged_warning(lm_pair, caplog):
    hf, fb = lm_pair
    ids = torch.randint(3, TINY["vocab_size"], (1, 3), generator=torch.Generator().manual_seed(3))
    theirs, _ = _generate(hf, ids, max_length=10, max_new_tokens=4)
    with caplog.at_level(logging.WARNING, logger="fastbert.generation"):
        ours, our_warnings = _generate(fb, ids, max_length=10, max_new_tokens=4)
    assert theirs.shape == ours.shape == (1, 7)
    assert torch.equal(ours, theirs)
    assert not _length_warnings(our_warnings)
    logged = [r.getMessage() for r in caplog.records if r.name == "fastbert.generation"]
    assert len(logged) == 1
    assert logged[0].startswith(
        "Both `max_new_tokens` (=4) and `max_length`(=10) seem to have been set. `max_new_tokens` will take "
        "precedence."
    )
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="fastbert.generation"):
        _generate(fb, ids, max_new_tokens=4)  # max_length not set: nothing to say
    assert not [r for r in caplog.records if r.name == "fastbert.generation"]


def test_right_padding_is_warned_about_as_transformers(lm_pair, caplog):
    """A row whose mask ends in padding continues from a padded position: transformers logs that
    right padding was detected (fastbert said nothing, and its packed forward reads zeros there)."""
    hf, fb = lm_pair
    ids = torch.randint(3, TINY["vocab_size"], (2, 4), generator=torch.Generator().manual_seed(3))
    mask = torch.ones_like(ids)
    right, left = mask.clone(), mask.clone()
    right[1, 3:] = 0
    left[1, :1] = 0
    said = "A decoder-only architecture is being used, but right-padding was detected!"
    for m, warned in [(right, True), (left, False), (mask, False)]:
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="fastbert.generation"):
            _generate(fb, ids, attention_mask=m, max_new_tokens=2)
        logged = [r.getMessage() for r in caplog.records if r.name == "fastbert.generation"]
        assert any(said in x for x in logged) == warned, (m, logged)


@pytest.mark.parametrize("use_cache", [True, False])
def test_a_right_padded_prompt_gives_transformers_tokens_with_and_without_the_cache(use_cache):
    """The first step of a right-padded row reads the logits of a padded position. Without the cache the
    forward packed and left that position's hidden state zero (transformers computes it), so use_cache=False
    gave other tokens than use_cache=True and transformers; warned about by both, the same tokens now."""
    hf, fb = _pair()
    with torch.no_grad():
        for p in hf.parameters():
            p.mul_(4)  # sharper logits: a zero hidden state picks another token
    fb.load_state_dict(hf.state_dict(), strict=False)
    ids = torch.randint(3, TINY["vocab_size"], (3, 6), generator=torch.Generator().manual_seed(3))
    mask = torch.ones_like(ids)
    mask[1, 4:] = 0  # right padding
    mask[2, :] = 0  # no real token
    kw = dict(attention_mask=mask, max_new_tokens=4, use_cache=use_cache)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = hf.generate(ids, **kw)
    assert torch.equal(fb.generate(ids, **kw), theirs)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(eos_token_id=5.0), "eos_token_id"),
        (dict(eos_token_id=5, pad_token_id=1.0), "pad_token_id"),
        (dict(eos_token_id=5, pad_token_id="1"), "pad_token_id"),
        (dict(eos_token_id=5, pad_token_id=[1]), "pad_token_id"),
    ],
)
def test_a_token_id_of_the_wrong_type_is_refused_naming_it(lm_pair, kwargs, name):
    """Before: eos_token_id=5.0 raised "'float' object is not iterable", pad_token_id=1.0 was blamed on
    input_ids ("input_ids must be integer token ids") and a str or list pad an AttributeError on a bool."""
    _, fb = lm_pair
    ids = torch.randint(3, TINY["vocab_size"], (2, 3), generator=torch.Generator().manual_seed(4))
    with pytest.raises(ValueError, match=f"^{name} must be a token id"):
        fb.generate(ids, max_new_tokens=3, **kwargs)


def test_a_token_id_tensor_is_taken(lm_pair):
    _, fb = lm_pair
    ids = torch.randint(3, TINY["vocab_size"], (2, 3), generator=torch.Generator().manual_seed(4))
    eos = int(fb.generate(ids, max_new_tokens=4)[0, 4])  # row 0's second new token
    want = fb.generate(ids, max_new_tokens=4, eos_token_id=eos, pad_token_id=1)
    got = fb.generate(ids, max_new_tokens=4, eos_token_id=torch.tensor(eos), pad_token_id=torch.tensor(1))
    assert torch.equal(got, want)


@pytest.mark.parametrize("pad", [TINY["vocab_size"], -1])
def test_a_pad_outside_the_vocabulary_is_refused_before_generating(lm_pair, pad):
    """A finished row's filler is fed back to the model on the next step: before, the forward of that step
    refused it as "input_ids holds 99" (ids the caller never passed), after the steps before it had run;
    transformers fails there too (an IndexError on the CPU)."""
    hf, fb = lm_pair
    ids = torch.randint(3, TINY["vocab_size"], (2, 3), generator=torch.Generator().manual_seed(10))
    free = fb.generate(ids, max_new_tokens=6)
    eos = int(free[0, 4])  # row 0's second new token: row 0 ends while row 1 goes on
    assert eos not in free[1, 3:].tolist()
    with pytest.raises(ValueError, match=rf"^pad_token_id={pad} is outside the vocabulary \[0, 99\)"):
        fb.generate(ids, max_new_tokens=6, eos_token_id=eos, pad_token_id=pad)
    with pytest.raises(IndexError):
        hf.generate(ids, max_new_tokens=6, eos_token_id=eos, pad_token_id=pad)
    # an eos id the model cannot produce ends no row, so its pad is never written: as transformers
    theirs = hf.generate(ids, max_new_tokens=6, eos_token_id=pad)
    assert torch.equal(fb.generate(ids, max_new_tokens=6, eos_token_id=pad), theirs)


@pytest.mark.parametrize(
    "name",
    ["pad_token_id", "eos_token_id", "max_new_tokens", "do_sample", "temperature", "top_k", "top_p"],
)
def test_a_setting_passed_as_none_overrides_the_generation_config_as_transformers(name):
    """transformers' ``generation_config.update(**kwargs)`` takes a setting passed as None (a tokenizer's
    ``pad_token_id`` / ``eos_token_id`` when it has none, ``top_k=args.top_k``) over the model's generation
    config: no pad (then the first eos id), no eos, no ``max_new_tokens``, greedy, no temperature, no top-k
    filter. fastbert took None as not passed and used the model's: other tokens after a row's end, another
    length, sampling where transformers was greedy, a top-k filter transformers does not apply."""
    hf, fb = _pair()
    ids = torch.randint(3, TINY["vocab_size"], (3, 5), generator=torch.Generator().manual_seed(1))
    eos = int(hf.generate(ids, max_new_tokens=8)[0, 7])  # row 0's third new token
    for model in (hf, fb):
        config = model.generation_config
        config.eos_token_id, config.pad_token_id, config.max_new_tokens = eos, 1, 7
        config.do_sample, config.temperature, config.top_k, config.top_p = True, 0.3, 5, 0.5
    torch.manual_seed(0)
    theirs = hf.generate(ids, **{name: None})
    torch.manual_seed(0)
    ours = fb.generate(ids, **{name: None})
    assert torch.equal(ours, theirs)


@pytest.mark.parametrize("kind", ["numpy", "tensor"])
def test_numpy_and_tensor_integers_are_taken_as_transformers(lm_pair, kind):
    """A length or id computed with NumPy or torch (``max_new_tokens=np.int64(4)``, ``torch.tensor(4)``) is
    taken by transformers' generate; fastbert refused it as "must be a whole number of at least 1"."""
    np = pytest.importorskip("numpy")
    hf, fb = lm_pair

    def to(v):
        return np.int64(v) if kind == "numpy" else torch.tensor(v)

    ids = torch.randint(3, TINY["vocab_size"], (2, 3), generator=torch.Generator().manual_seed(5))
    want = hf.generate(ids, max_new_tokens=4)
    assert torch.equal(fb.generate(ids, max_new_tokens=to(4)), want)
    assert torch.equal(fb.generate(ids, max_length=to(7)), want)
    eos = int(want[0, 4])
    want = hf.generate(ids, max_new_tokens=4, eos_token_id=eos, pad_token_id=1)
    got = fb.generate(ids, max_new_tokens=4, eos_token_id=[to(eos)], pad_token_id=to(1))
    assert torch.equal(got, want)
    torch.manual_seed(0)
    want = hf.generate(ids, max_new_tokens=3, do_sample=True, top_k=3, num_return_sequences=2)
    torch.manual_seed(0)
    got = fb.generate(ids, max_new_tokens=3, do_sample=True, top_k=to(3), num_return_sequences=to(2))
    assert torch.equal(got, want)
    with pytest.raises(ValueError, match="^max_new_tokens must be a whole number"):
        fb.generate(ids, max_new_tokens=np.bool_(True) if kind == "numpy" else torch.tensor(True))


def test_a_length_past_max_position_embeddings_is_refused_before_generating():
    """Prompt + max_new_tokens past the position table: transformers 5.25 logs a "friendly reminder" and fails
    partway with an IndexError-like RuntimeError from the position table; fastbert failed partway too, with a
    ValueError on position_ids after the first tokens were computed. Now a ValueError before the first forward,
    naming max_new_tokens / max_length, the prompt length and max_position_embeddings. The last new token is
    never fed back, so prompt + new tokens may exceed the table by one, as in transformers."""
    hf, fb = _pair(max_position_embeddings=12)
    ids = torch.randint(3, TINY["vocab_size"], (2, 5), generator=torch.Generator().manual_seed(2))
    mask = torch.ones_like(ids)
    mask[1, :2] = 0  # left padding: the unpadded row sets the limit
    for kwargs in (dict(max_new_tokens=8), dict(max_new_tokens=8, use_cache=False), dict(max_length=13)):
        assert torch.equal(
            fb.generate(ids, attention_mask=mask, **kwargs), hf.generate(ids, attention_mask=mask, **kwargs)
        )
    with pytest.raises(RuntimeError):  # what transformers does one token further
        hf.generate(ids, max_new_tokens=9)
    calls = []
    handle = fb.register_forward_hook(lambda *a: calls.append(1))
    try:
        for kwargs, asked in (
            (dict(max_new_tokens=9), r"max_new_tokens=9"),
            (dict(max_new_tokens=9, use_cache=False), r"max_new_tokens=9"),
            (dict(max_length=14), r"max_length=14 \(9 new tokens\)"),
        ):
            with pytest.raises(
                ValueError, match=asked + r".* prompt of 5 tokens.*max_position_embeddings=12"
            ) as e:
                fb.generate(ids, attention_mask=mask, **kwargs)
            assert "At most 8 new tokens fit" in str(e.value)
        assert calls == []  # refused before the first forward
    finally:
        handle.remove()


_CHANGES_OUTPUT = [
    dict(num_beams=2),
    dict(repetition_penalty=1.5),
    dict(no_repeat_ngram_size=2),
    dict(penalty_alpha=0.6),  # transformers 5.25: contrastive search, a hub repo (a ValueError there too)
    dict(max_time=10.0),
    dict(min_new_tokens=2, eos_token_id=5),
    dict(do_sample=True, min_p=0.1),
    dict(return_dict_in_generate=True, output_attentions=True),
    dict(guidance_scale=1.5),
]


@pytest.mark.parametrize("asked", _CHANGES_OUTPUT, ids=lambda d: ",".join(d))
@pytest.mark.parametrize("route", ["argument", "generation_config=", "model.generation_config"])
def test_an_unsupported_setting_that_changes_the_output_is_refused_whichever_way_it_is_given(
    lm_pair, asked, route
):
    """A setting fastbert's generate does not implement was a TypeError as a keyword argument but, in a
    (transformers) GenerationConfig, a warning and then greedy tokens where transformers runs beam search,
    say. Now a ValueError naming it and where it came from, whichever way it is given; the call overrides a
    config with the default."""
    _, fb = lm_pair
    ids = torch.randint(6, TINY["vocab_size"], (1, 4), generator=torch.Generator().manual_seed(3))
    name = next(k for k in asked if k not in ("eos_token_id", "do_sample", "return_dict_in_generate"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the config's warning when it is set
        config = transformers.GenerationConfig(max_new_tokens=3, **asked)
    saved = fb.generation_config
    try:
        if route == "argument":
            call = dict(max_new_tokens=3, **asked)
        elif route == "generation_config=":
            call = dict(generation_config=config)
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fb.generation_config = config
            call = {}
        with pytest.raises(ValueError, match=rf"{name}={asked[name]!r} \({route}\)"):
            fb.generate(ids, **call)
        if route != "argument":  # the call's default wins over the config's setting
            default = {
                "num_beams": 1,
                "repetition_penalty": 1.0,
                "no_repeat_ngram_size": 0,
                "min_new_tokens": 0,
            }
            out = fb.generate(ids, **call, **{name: default.get(name)})  # None: transformers' "unset"
            out = out.sequences if asked.get("return_dict_in_generate") else out
            assert out.shape == (1, 7)
    finally:
        fb.generation_config = saved


_NO_CHANGE = [
    dict(early_stopping=True),
    dict(length_penalty=2.0),
    dict(min_p=0.1),  # greedy: transformers applies it only when sampling
    dict(typical_p=0.5),
    dict(low_memory=True),
    dict(num_assistant_tokens=5),
    dict(cache_implementation="static"),
    dict(decoder_start_token_id=3),
    dict(output_attentions=True),  # without return_dict_in_generate
    dict(min_new_tokens=2),  # no eos id to hold back
    dict(guidance_scale=1.0),  # classifier-free guidance of scale 1: transformers adds no processor
    dict(num_beams=1, repetition_penalty=1.0),
]


@pytest.mark.parametrize("given", _NO_CHANGE, ids=lambda d: ",".join(d))
@pytest.mark.parametrize("route", ["argument", "generation_config="])
def test_an_unsupported_setting_that_changes_nothing_is_accepted_as_transformers(lm_pair, given, route):
    """transformers 5.25 ignores these in greedy search (beam-only, sampling-only, assisted-only, cache
    choices): fastbert gives its tokens, whichever way they are given (a keyword argument was a TypeError)."""
    hf, fb = lm_pair
    ids = torch.randint(6, TINY["vocab_size"], (2, 4), generator=torch.Generator().manual_seed(4))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        call = (
            dict(max_new_tokens=5, **given)
            if route == "argument"
            else dict(generation_config=transformers.GenerationConfig(max_new_tokens=5, **given))
        )
        want = hf.generate(ids, **call)
        assert torch.equal(fb.generate(ids, **call), want)


def test_transformers_generate_arguments_are_taken_unset_and_refused_set(lm_pair):
    """transformers' own generate arguments (a wrapper forwarding every one passes None): accepted unset or
    empty, a ValueError naming them when they ask for something; a TypeError before, either way."""
    hf, fb = lm_pair
    ids = torch.randint(6, TINY["vocab_size"], (1, 4), generator=torch.Generator().manual_seed(5))
    unset = dict(
        logits_processor=transformers.LogitsProcessorList(),
        stopping_criteria=transformers.StoppingCriteriaList(),
        assistant_model=None,
        streamer=None,
        prefix_allowed_tokens_fn=None,
        synced_gpus=False,
        negative_prompt_ids=None,
        custom_generate=None,
    )
    assert torch.equal(
        fb.generate(ids, max_new_tokens=3, **unset), hf.generate(ids, max_new_tokens=3, **unset)
    )
    asked = dict(
        logits_processor=transformers.LogitsProcessorList([transformers.TemperatureLogitsWarper(0.5)]),
        assistant_model=hf,
        streamer=object(),
        prefix_allowed_tokens_fn=lambda batch, ids: [1],
    )
    for name, value in asked.items():
        with pytest.raises(ValueError, match=rf"{name}=.* \(argument\)"):
            fb.generate(ids, max_new_tokens=3, **{name: value})
    with pytest.raises(TypeError, match="unexpected keyword arguments \\['foo'\\]"):  # not a generate setting
        fb.generate(ids, max_new_tokens=3, foo=1)


class _Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def _logged(model, logger_name, ids, **kwargs):
    handler = _Records()
    log = logging.getLogger(logger_name)
    log.addHandler(handler)
    try:
        _generate(model, ids, **kwargs)
    finally:
        log.removeHandler(handler)
    return handler.messages


_NO_MASK_NO_PAD = "The attention mask and the pad token id were not set, with a batched input."
_PAD_IS_EOS = (
    "The attention mask is not set with a batched input, and cannot be inferred from input because pad"
)
_NEGATIVE_EOS = "`eos_token_id` should consist of positive integers, but is tensor([-1]). Your generation"


def test_special_token_warnings_are_logged_as_transformers(lm_pair):
    """transformers 5.25's _prepare_special_tokens logs when a batch comes without attention mask and without
    pad id (the first eos id then pads), when the pad id is an eos id so no mask can be inferred, and when an
    eos id is negative (generation runs to the maximum length); fastbert said nothing."""
    hf, fb = lm_pair
    ids = torch.randint(6, TINY["vocab_size"], (2, 4), generator=torch.Generator().manual_seed(6))
    cases = [
        (dict(max_new_tokens=2, eos_token_id=5, pad_token_id=None), [_NO_MASK_NO_PAD, _PAD_IS_EOS]),
        (dict(max_new_tokens=2, eos_token_id=[5, 7], pad_token_id=7), [_PAD_IS_EOS]),
        (dict(max_new_tokens=2, eos_token_id=-1, pad_token_id=0), [_NEGATIVE_EOS]),
        (dict(max_new_tokens=2, eos_token_id=-1, pad_token_id=0), [_NEGATIVE_EOS]),
        (dict(max_new_tokens=2, eos_token_id=5, pad_token_id=None, attention_mask=torch.ones_like(ids)), []),
        (dict(max_new_tokens=2, eos_token_id=5, pad_token_id=0), []),
    ]
    for kwargs, expected in cases:
        ours = _logged(fb, "fastbert.generation", ids, **kwargs)
        assert [[m for m in ours if m.startswith(e)] != [] for e in expected] == [True] * len(expected), (
            kwargs,
            ours,
        )
        assert len(ours) == len(expected), (kwargs, ours)
        theirs = _logged(hf, "transformers", ids, **kwargs)  # 5.25 logs _PAD_IS_EOS once per process
        for message in ours:
            if not message.startswith(_PAD_IS_EOS):
                assert message in theirs, (kwargs, message, theirs)
    one_row = _logged(fb, "fastbert.generation", ids[:1], max_new_tokens=2, eos_token_id=5, pad_token_id=None)
    assert one_row == []  # one row: no padding, nothing to say (as transformers)


def test_fastbert_s_generation_config_takes_transformers_settings_as_generate_does(lm_pair, tmp_path):
    """fastbert's GenerationConfig(num_beams=4) was a TypeError ("unknown fields") and so was
    GenerationConfig(num_beams=1), while generate(num_beams=1) was taken: now it keeps them as transformers'
    GenerationConfig does, and generate refuses them where they would change the output, as when passed to it."""
    hf, fb = lm_pair
    ids = torch.randint(6, TINY["vocab_size"], (1, 4), generator=torch.Generator().manual_seed(7))
    with pytest.warns(UserWarning, match="num_beams=4"):
        beams = GenerationConfig(max_new_tokens=3, num_beams=4)
    with pytest.raises(ValueError, match=r"num_beams=4 \(generation_config=\)"):
        fb.generate(ids, generation_config=beams)
    beams.save_pretrained(tmp_path)
    assert transformers.GenerationConfig.from_pretrained(tmp_path).num_beams == 4  # kept for transformers
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # at the default, or read only by beam search: nothing to say
        quiet = GenerationConfig(max_new_tokens=3, num_beams=1, early_stopping=True, repetition_penalty=None)
    assert "num_beams" not in quiet.to_dict() and quiet.to_dict()["early_stopping"] is True
    want = hf.generate(ids, max_new_tokens=3)
    assert torch.equal(fb.generate(ids, generation_config=quiet), want)
    with pytest.raises(TypeError, match=r"unknown fields \['nmu_beams'\]"):
        GenerationConfig(nmu_beams=4)


@pytest.mark.parametrize("name", ["past_key_values", "cache"])
def test_a_cache_passed_to_generate_is_refused_naming_it(lm_pair, name):
    """transformers' generate continues from a prefilled cache (prompt reuse); fastbert's does not, and said
    only that the argument was unexpected, beside a list of other things it does not do."""
    hf, fb = lm_pair
    ids = torch.randint(3, TINY["vocab_size"], (1, 5), generator=torch.Generator().manual_seed(6))
    cache = transformers.DynamicCache()
    with torch.no_grad():
        fb(ids[:, :3], past_key_values=cache, use_cache=True)
    with pytest.raises(TypeError, match=f"got {name}: fastbert's generate does not continue from a cache"):
        fb.generate(ids, max_new_tokens=3, **{name: cache})
    # what the message recommends gives transformers' tokens for the cache it was passed
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = hf.generate(ids, past_key_values=cache, max_new_tokens=3)
    assert torch.equal(fb.generate(ids, max_new_tokens=3), theirs)
    assert fb.generate(ids, max_new_tokens=3, past_key_values=None).shape == (1, 8)  # None asks nothing


def test_the_dict_output_has_transformers_fields(lm_pair):
    """transformers' GenerateDecoderOnlyOutput has attentions and hidden_states (None unless asked for): code
    that reads them (``if out.attentions is not None``) failed with an AttributeError."""
    hf, fb = lm_pair
    ids = torch.randint(3, TINY["vocab_size"], (2, 4), generator=torch.Generator().manual_seed(8))
    kw = dict(max_new_tokens=3, return_dict_in_generate=True, output_scores=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = hf.generate(ids, **kw)
    ours = fb.generate(ids, **kw)
    assert ours.attentions is None and ours.hidden_states is None
    assert theirs.attentions is None and theirs.hidden_states is None
    assert [k for k in ours.keys() if k != "past_key_values"] == [k for k in theirs.keys() if k != "cache"]
    assert torch.equal(ours.sequences, theirs.sequences)


@pytest.mark.parametrize("use_cache", [True, False])
def test_one_row_of_encoder_states_for_all_rows_with_num_return_sequences(use_cache):
    """The forward takes one row of encoder states for all input rows; generate repeated it with each row's
    copies, so num_return_sequences=2 gave it 2 rows for 4 and the first forward refused it ("expected (4,
    encoder_length, ...)", a shape the caller never passed). transformers fails there too; the tokens are those of
    the states given per row (transformers' with use_cache=False: its cached cross-attention decoder fails)."""
    hf, fb = _pair(add_cross_attention=True)
    g = torch.Generator().manual_seed(6)
    ids = torch.randint(3, TINY["vocab_size"], (2, 4), generator=g)
    one = torch.randn(1, 5, TINY["hidden_size"], generator=g)
    kw = dict(max_new_tokens=3, do_sample=True, num_return_sequences=2)
    torch.manual_seed(0)
    ours = fb.generate(ids, encoder_hidden_states=one, use_cache=use_cache, **kw)
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = hf.generate(ids, encoder_hidden_states=one.expand(2, -1, -1), use_cache=False, **kw)
    assert torch.equal(ours, theirs)
