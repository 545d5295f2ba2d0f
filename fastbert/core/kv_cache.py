"""transformers' KV caches as fastbert's layers read them: legacy tuples per layer, (k, v) or
(k, v, cross_k, cross_v), each (batch, heads, positions, head_dim).

A transformers ``Cache`` (``DynamicCache``, ``StaticCache``, ``EncoderDecoderCache``; transformers 4.5x and 5) is
read through its public attributes, without importing transformers, and a forward given one writes its new
keys/values into it in place, as transformers' attention layers do; legacy tuples are read as they are and a
forward returns new ones.
"""

from __future__ import annotations

import torch


def _cache_layers(cache) -> list[tuple]:
    """(keys, values) per filled layer of one cache: a transformers ``Cache`` (read through its public
    ``layers`` / ``key_cache`` attributes, no import of transformers) or legacy tuples; [] when empty."""
    layers = getattr(cache, "layers", None)
    if layers is not None:  # transformers 5: layers with .keys / .values, None until first filled
        out = []
        for i, layer in enumerate(layers):
            keys, values = getattr(layer, "keys", None), getattr(layer, "values", None)
            if not isinstance(keys, torch.Tensor) or keys.dim() != 4:
                break
            # a StaticCache's layers are preallocated to its max_cache_len: the filled positions only
            filled = cache.get_seq_length(i) if hasattr(cache, "get_seq_length") else keys.shape[2]
            if filled == 0:
                break
            if filled < keys.shape[2]:
                keys, values = keys[:, :, :filled], values[:, :, :filled]
            out.append((keys, values))
        return out
    if hasattr(cache, "key_cache"):  # transformers 4's DynamicCache
        return [(k, v) for k, v in zip(cache.key_cache, cache.value_cache) if isinstance(k, torch.Tensor)]
    if hasattr(cache, "to_legacy_cache"):
        cache = cache.to_legacy_cache()
    return [tuple(layer) for layer in cache if len(layer)]


def as_legacy_cache(past_key_values):
    """Past keys/values as legacy tuples, per layer (k, v) or (k, v, cross_k, cross_v); None when empty.

    An ``EncoderDecoderCache`` whose cross-attention part is empty (or partly filled) gives (k, v) layers:
    the cross-attention keys are then computed from the encoder's states, as transformers does."""
    if past_key_values is None:
        return None
    if hasattr(past_key_values, "self_attention_cache"):  # transformers' EncoderDecoderCache
        own = _cache_layers(past_key_values.self_attention_cache)
        cross = _cache_layers(past_key_values.cross_attention_cache)
        if not own:
            return None
        if len(cross) == len(own):
            return tuple(tuple(s) + tuple(c) for s, c in zip(own, cross))
        return tuple(tuple(s) for s in own)
    layers = _cache_layers(past_key_values)
    return tuple(tuple(layer) for layer in layers) if layers else None


def is_cache_object(past_key_values) -> bool:
    """``past_key_values`` is a transformers ``Cache`` (updated in place by a forward), not legacy tuples."""
    return past_key_values is not None and callable(getattr(past_key_values, "update", None))


def update_cache(cache, presents: tuple, past_length: int):
    """Write this forward's new keys/values into the transformers ``Cache`` the caller passed, in place, as
    transformers' attention layers do (``cache.update`` per layer; an ``EncoderDecoderCache``'s cross-attention
    part once, when it is empty), and return it. ``presents``: per layer (k, v) or (k, v, cross_k, cross_v),
    the past positions included."""
    own = getattr(cache, "self_attention_cache", cache)
    cross = getattr(cache, "cross_attention_cache", None)
    cross_filled = len(_cache_layers(cross)) if cross is not None else 0
    for i, present in enumerate(presents):
        keys, values = present[0], present[1]
        positions = torch.arange(past_length, keys.shape[2], device=keys.device)
        own.update(keys[:, :, past_length:], values[:, :, past_length:], i, {"cache_position": positions})
        if cross is not None and len(present) == 4 and i >= cross_filled:
            cross.update(present[2], present[3], i)
            is_updated = getattr(cache, "is_updated", None)
            if isinstance(is_updated, dict):
                is_updated[i] = True
    return cache


def cache_capacity(cache) -> int | None:
    """How many positions a transformers ``Cache`` holds at most (a ``StaticCache``'s ``max_cache_len``; the
    self-attention part of an ``EncoderDecoderCache``), or None when it grows (``DynamicCache``): transformers
    4.5x's ``get_max_cache_shape()``, 5's ``get_max_length()``, -1 or None for no maximum."""
    own = getattr(cache, "self_attention_cache", cache)
    if getattr(own, "layers", None) == []:  # a DynamicCache before its first update: no layers to ask
        return None
    for name in ("get_max_cache_shape", "get_max_length"):  # 4.5x (whose get_max_length warns), then 5
        method = getattr(own, name, None)
        if callable(method):
            capacity = method()
            return capacity if isinstance(capacity, int) and capacity >= 0 else None
    return None


def cache_length(past_key_values) -> int:
    """How many positions ``past_key_values`` (a ``Cache``, legacy tuples or None) already holds."""
    past = as_legacy_cache(past_key_values)
    return past[0][0].shape[2] if past is not None else 0
