"""Every class of every family takes its ``forward`` arguments in transformers' order, so positional calls
written for transformers mean the same here (RoBERTa's multiple-choice head puts ``token_type_ids`` before
``attention_mask``; transformers 5 calls the cache ``cache`` where fastbert also accepts
``past_key_values``, both in the same place)."""

from __future__ import annotations

import inspect

import pytest

#: CPU models only (no CUDA path): CI runs it; the GPU check's CUDA tier leaves it out
pytestmark = pytest.mark.cpu_only

transformers = pytest.importorskip("transformers")

from fastbert import registry  # noqa: E402

CLASSES = sorted(
    {(family.model_type, name) for family in registry.FAMILIES.values() for name in family.classes.values()}
)


#: switches, not data: transformers 4 and 5 order them differently after the inputs (``logits_to_keep``)
SWITCHES = {"output_attentions", "output_hidden_states", "return_dict", "logits_to_keep"}


def _positional(cls, rename: dict[str, str]) -> list[str]:
    names = []
    for p in inspect.signature(cls.forward).parameters.values():
        if p.name in SWITCHES or p.name == "self":
            continue
        if p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL, p.KEYWORD_ONLY):
            continue
        names.append(rename.get(p.name, p.name))
    return names


@pytest.mark.parametrize(("model_type", "name"), CLASSES)
def test_forward_arguments_in_transformers_order(model_type, name):
    theirs_cls = getattr(transformers, name, None)
    if theirs_cls is None:
        pytest.skip(f"transformers {transformers.__version__} has no {name}")
    ours = _positional(registry.family(model_type).model_class(registry.task_of_class(name)), {})
    if "past_key_values" in ours:
        ours = [n for n in ours if n != "cache"]  # fastbert's alias of transformers 5's name, last
    theirs = _positional(theirs_cls, {"cache": "past_key_values"} if "past_key_values" in ours else {})
    # transformers' positional arguments, in its order, first: fastbert's extra ones only after them
    assert ours[: len(theirs)] == theirs, f"{name}: ours {ours}, transformers {theirs}"
