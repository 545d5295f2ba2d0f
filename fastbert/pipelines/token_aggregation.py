"""How token-classification turns per-token scores into words and entities (transformers' strategies).

``none``: one entity per token; ``simple``: tokens grouped into entities by their B-/I- tags;
``first`` / ``average`` / ``max``: the tokens of a word first agree on one label (the first token's,
the average of the scores, the most confident token's), then words are grouped like ``simple``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

AGGREGATION_STRATEGIES = ("none", "simple", "first", "average", "max")

Label = Callable[[int], str]
TokensToString = Callable[[list[str]], str]


def aggregate(
    pre: list[dict[str, Any]], strategy: str, label: Label, to_string: TokensToString
) -> list[dict[str, Any]]:
    """Entities of one row's pre-entities (``word, scores, start, end, index, is_subword``)."""
    if strategy in ("none", "simple"):
        entities = []
        for p in pre:
            i = int(p["scores"].argmax())
            entities.append(
                {
                    "entity": label(i),
                    "score": p["scores"][i],
                    "index": p["index"],
                    "word": p["word"],
                    "start": p["start"],
                    "end": p["end"],
                }
            )
    else:
        entities = _aggregate_words(pre, strategy, label, to_string)
    if strategy == "none":
        return entities
    return _group_entities(entities, to_string)


def _aggregate_word(entities: list[dict[str, Any]], strategy: str, label: Label, to_string: TokensToString):
    if strategy == "first":
        scores = entities[0]["scores"]
    elif strategy == "max":
        scores = max(entities, key=lambda e: e["scores"].max())["scores"]
    elif strategy == "average":
        scores = np.nanmean(np.stack([e["scores"] for e in entities]), axis=0)
    else:
        raise ValueError(
            f"unknown aggregation_strategy {strategy!r}: use one of {', '.join(AGGREGATION_STRATEGIES)}"
        )
    idx = int(scores.argmax())
    return {
        "entity": label(idx),
        "score": scores[idx],
        "word": to_string([e["word"] for e in entities]),
        "start": entities[0]["start"],
        "end": entities[-1]["end"],
    }


def _aggregate_words(entities, strategy, label, to_string):
    words = []
    group: list[dict[str, Any]] | None = None
    for e in entities:
        if group is None:
            group = [e]
        elif e["is_subword"]:
            group.append(e)
        else:
            words.append(_aggregate_word(group, strategy, label, to_string))
            group = [e]
    if group is not None:
        words.append(_aggregate_word(group, strategy, label, to_string))
    return words


def _tag(name: str) -> tuple[str, str]:
    """("B" or "I", the entity) of a label; a label without a B-/I- prefix continues its entity."""
    if name.startswith("B-"):
        return "B", name[2:]
    if name.startswith("I-"):
        return "I", name[2:]
    return "I", name


def _group_sub_entities(entities, to_string):
    return {
        "entity_group": entities[0]["entity"].split("-", 1)[-1],
        "score": np.mean(np.nanmean([e["score"] for e in entities])),
        "word": to_string([e["word"] for e in entities]),
        "start": entities[0]["start"],
        "end": entities[-1]["end"],
    }


def _group_entities(entities, to_string):
    groups = []
    current: list[dict[str, Any]] = []
    for e in entities:
        if not current:
            current.append(e)
            continue
        bi, tag = _tag(e["entity"])
        _, last_tag = _tag(current[-1]["entity"])
        if tag == last_tag and bi != "B":
            current.append(e)
        else:
            groups.append(_group_sub_entities(current, to_string))
            current = [e]
    if current:
        groups.append(_group_sub_entities(current, to_string))
    return groups


def aggregate_overlapping(entities: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Entities of overlapping strided windows: of two that overlap, the longer (then the surer) stays."""
    if not entities:
        return entities
    entities = sorted(entities, key=lambda x: x["start"])
    out = []
    prev = entities[0]
    for e in entities:
        if prev["start"] <= e["start"] < prev["end"]:
            cur_len = e["end"] - e["start"]
            prev_len = prev["end"] - prev["start"]
            if cur_len > prev_len or cur_len == prev_len and e["score"] > prev["score"]:
                prev = e
        else:
            out.append(prev)
            prev = e
    out.append(prev)
    return out


def plain_entity(e: dict[str, Any]) -> dict[str, Any]:
    """The entity with numpy scalars as Python numbers (what JSON and transformers' users expect)."""
    return {k: v.item() if isinstance(v, np.generic) else v for k, v in e.items()}
