"""Special tokens and the vocabulary: the special tokens a tokenizer adds to its backend, and the attributes and
methods of transformers' tokenizers that read or change them (``*_token_id``, ``special_tokens_map``,
``add_special_tokens``, ``convert_tokens_to_ids``...). Model-agnostic: the family class says which special tokens
its template uses (``_update_post_processor``).
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

from tokenizers import AddedToken, Tokenizer

from .call import _to_py
from .files import SPECIAL_TOKENS_ATTRIBUTES, _token_content


def _add_special_tokens(backend: Tokenizer, specials: Sequence[str | AddedToken]) -> None:
    """Special tokens are matched whole in the raw text, before normalization: those the backend lacks (an
    ``AddedToken`` with its own flags)."""
    existing = {t.content for t in backend.get_added_tokens_decoder().values()}
    missing: dict[str, AddedToken] = {}
    for t in specials:
        content = t.content if isinstance(t, AddedToken) else t
        if content not in existing and content not in missing:
            missing[content] = (
                t if isinstance(t, AddedToken) else AddedToken(t, special=True, normalized=False)
            )
    if missing:
        backend.add_special_tokens(list(missing.values()))


def as_added_token(entry: Any, plain_special: bool = False) -> AddedToken | None:
    """An ``added_tokens_decoder`` value (AddedToken, ``{"content": ..., <flag>: bool}`` or a bare string) →
    AddedToken; None when it has no content. A mapping without ``special`` is a normal token; a bare string
    is special when ``plain_special`` (RoBERTa's family reads it so). ``normalized`` defaults to not special."""
    if isinstance(entry, AddedToken):
        return entry
    content = _token_content(entry)
    if not content:
        return None
    flags = entry if isinstance(entry, Mapping) else {}
    special = bool(flags.get("special", plain_special and not isinstance(entry, Mapping)))
    return AddedToken(
        content,
        single_word=bool(flags.get("single_word", False)),
        lstrip=bool(flags.get("lstrip", False)),
        rstrip=bool(flags.get("rstrip", False)),
        normalized=bool(flags.get("normalized", not special)),
        special=special,
    )


def _add_config_tokens(backend: Tokenizer, added_tokens_decoder: Mapping | None) -> None:
    """The added tokens the files list (``added_tokens_decoder``, ``{id: token}``; from tokenizer_config.json or
    a legacy added_tokens.json) that the backend lacks, in the order of their ids, with their flags: called
    before the special tokens are added, so that each takes the id the files give it (transformers does the
    same). A token that gets another id (the files skip ids) is warned about: ids of the checkpoint's
    embeddings would not match."""
    existing = {t.content for t in backend.get_added_tokens_decoder().values()}
    # the ids were checked at construction (_check_settings: ints or digit strings)
    for index, entry in sorted(
        ((int(i), e) for i, e in (added_tokens_decoder or {}).items()), key=lambda t: t[0]
    ):
        token = as_added_token(entry)
        if token is None or token.content in existing:
            continue
        if token.special:
            backend.add_special_tokens([token])
        else:
            backend.add_tokens([token])
        existing.add(token.content)
        got = backend.token_to_id(token.content)
        if got != index:
            warnings.warn(
                f"the tokenizer files give the added token {token.content!r} id {index}, but it gets id {got} "
                "(the files skip or repeat ids): its embedding row in the model may be another token's",
                stacklevel=4,
            )


class SpecialTokensMixin:
    """The vocabulary and special tokens of a tokenizer whose backend is ``self._tokenizer`` (a
    ``tokenizers.Tokenizer``, changed under ``self._lock``) and whose special tokens are the attributes named in
    ``SPECIAL_TOKENS_ATTRIBUTES`` plus ``additional_special_tokens``."""

    _tokenizer: Tokenizer
    _lock: threading.RLock
    unk_token: str | None
    sep_token: str | None
    pad_token: str | None
    cls_token: str | None
    mask_token: str | None
    bos_token: str | None
    eos_token: str | None
    additional_special_tokens: list[str]
    init_kwargs: dict[str, Any]

    def _special_token_values(self) -> list[str | None]:
        """The special tokens in the order they are added to the backend (None where unset)."""
        return [
            self.unk_token,
            self.sep_token,
            self.pad_token,
            self.cls_token,
            self.mask_token,
            self.bos_token,
            self.eos_token,
            *self.additional_special_tokens,
        ]

    def _update_post_processor(self) -> None:
        """Rebuild the backend's template after ``cls_token`` / ``sep_token`` / ``bos_token`` / ``eos_token``
        changed (the family's)."""

    @property
    def backend_tokenizer(self) -> Tokenizer:
        return self._tokenizer

    @property
    def decoder(self) -> Any:
        return self._tokenizer.decoder

    @property
    def vocab_size(self) -> int:
        """Size of the base vocabulary (without added tokens)."""
        return self._tokenizer.get_vocab_size(with_added_tokens=False)

    def __len__(self) -> int:
        """Size of the full vocabulary, added tokens included."""
        return self._tokenizer.get_vocab_size(with_added_tokens=True)

    def __bool__(self) -> bool:
        return True

    def get_vocab(self) -> dict[str, int]:
        return self._tokenizer.get_vocab(with_added_tokens=True)

    @property
    def vocab(self) -> dict[str, int]:
        return self.get_vocab()

    def get_added_vocab(self) -> dict[str, int]:
        return {t.content: i for i, t in sorted(self._tokenizer.get_added_tokens_decoder().items())}

    @property
    def added_tokens_decoder(self) -> dict[int, AddedToken]:
        return dict(sorted(self._tokenizer.get_added_tokens_decoder().items()))

    def _id(self, token: str | None) -> int | None:
        if token is None:
            return None
        i = self._tokenizer.token_to_id(token)
        return i if i is not None else self._tokenizer.token_to_id(self.unk_token) if self.unk_token else None

    def __setattr__(self, key: str, value: Any) -> None:
        """Setting a special token as transformers 4's (and 5's) tokenizers do: ``tok.pad_token_id = 3`` sets
        ``pad_token`` to the token of id 3 (None for an id out of the vocabulary), ``additional_special_tokens_ids``
        the ``additional_special_tokens``; an ``AddedToken`` is kept as its content; any other non-string value of
        a special token is refused here (it failed later, as a TypeError, when its id was read)."""
        if key.endswith("_id") and key[:-3] in SPECIAL_TOKENS_ATTRIBUTES:
            key, value = key[:-3], None if value is None else self.convert_ids_to_tokens(value)
        elif key == "additional_special_tokens_ids":
            key, value = "additional_special_tokens", [self.convert_ids_to_tokens(v) for v in _to_py(value)]
        if key in SPECIAL_TOKENS_ATTRIBUTES:
            if value is not None and not isinstance(value, (str, AddedToken)):
                raise ValueError(
                    f"Cannot set a non-string value as the {key}: got {type(value).__name__} {value!r}"
                )
            value = _token_content(value)
        elif key == "additional_special_tokens" and value is not None:
            value = [_token_content(v) for v in value]
        super().__setattr__(key, value)

    unk_token_id = property(lambda self: self._id(self.unk_token))
    sep_token_id = property(lambda self: self._id(self.sep_token))
    pad_token_id = property(lambda self: self._id(self.pad_token))
    cls_token_id = property(lambda self: self._id(self.cls_token))
    mask_token_id = property(lambda self: self._id(self.mask_token))
    bos_token_id = property(lambda self: self._id(self.bos_token))
    eos_token_id = property(lambda self: self._id(self.eos_token))

    @property
    def _pad_token(self) -> str | None:  # transformers 4's data collators read it
        return self.pad_token

    @property
    def additional_special_tokens_ids(self) -> list[int]:
        return [self._id(t) for t in self.additional_special_tokens]

    @property
    def special_tokens_map(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for attr in SPECIAL_TOKENS_ATTRIBUTES:
            value = getattr(self, attr)
            if value is not None:
                out[attr] = value
        if self.additional_special_tokens:
            out["additional_special_tokens"] = list(self.additional_special_tokens)
        return out

    @property
    def all_special_tokens(self) -> list[str]:
        """Special tokens in transformers' order: unk, sep, pad, cls, mask (then bos/eos, additional)."""
        tokens: list[str] = []
        for attr in SPECIAL_TOKENS_ATTRIBUTES:
            value = getattr(self, attr)
            if value is not None and value not in tokens:
                tokens.append(value)
        for t in self.additional_special_tokens:
            if t not in tokens:
                tokens.append(t)
        return tokens

    @property
    def all_special_ids(self) -> list[int]:
        return [self._id(t) for t in self.all_special_tokens]

    def add_tokens(
        self, new_tokens: str | AddedToken | Sequence[str | AddedToken], special_tokens: bool = False
    ) -> int:
        """Add tokens to the vocabulary; returns how many were new (none given: 0)."""
        if not new_tokens:
            return 0
        if isinstance(new_tokens, (str, AddedToken)):
            new_tokens = [new_tokens]
        for t in new_tokens:
            if not isinstance(t, (str, AddedToken)):
                raise ValueError(f"Token {t!r} is not a string but a {type(t).__name__}")
        tokens = [
            t
            if isinstance(t, AddedToken)
            else AddedToken(t, special=special_tokens, normalized=not special_tokens)
            for t in new_tokens
        ]
        with self._lock:
            if special_tokens:
                return self._tokenizer.add_special_tokens(tokens)
            return self._tokenizer.add_tokens(tokens)

    def add_special_tokens(
        self, special_tokens_dict: Mapping[str, Any], replace_additional_special_tokens: bool = True
    ) -> int:
        """Add/set special tokens (``{"pad_token": "[PAD]", "additional_special_tokens": [...]}``)."""
        added = 0
        for key, value in special_tokens_dict.items():
            if key == "additional_special_tokens":
                values = [_token_content(v) for v in value]
                added += self.add_tokens(list(value), special_tokens=True)
                if replace_additional_special_tokens:
                    self.additional_special_tokens = values
                else:
                    self.additional_special_tokens += [
                        v for v in values if v not in self.additional_special_tokens
                    ]
            elif key in SPECIAL_TOKENS_ATTRIBUTES:
                if not isinstance(value, (str, AddedToken)):
                    raise ValueError(
                        f"{key} must be a string or an AddedToken, got {type(value).__name__} {value!r}"
                    )
                added += self.add_tokens([value], special_tokens=True)
                setattr(self, key, _token_content(value))
                self.init_kwargs[key] = _token_content(value)
            else:
                raise ValueError(f"Key {key} is not a special token")
        # as transformers' fast tokenizers: the post-processor's template keeps its tokens (a new cls_token is
        # named, not put around every input)
        return added

    def convert_tokens_to_ids(self, tokens: str | Sequence[str] | None) -> int | list[int] | None:
        if tokens is None:
            return None
        if isinstance(tokens, str):
            return self._id(tokens)
        return [self._id(t) for t in tokens]

    def convert_ids_to_tokens(
        self, ids: int | Sequence[int], skip_special_tokens: bool = False
    ) -> str | list[str]:
        ids = _to_py(ids)
        if isinstance(ids, int):
            return self._tokenizer.id_to_token(ids)
        special = set(self.all_special_ids) if skip_special_tokens else set()
        return [self._tokenizer.id_to_token(int(i)) for i in ids if int(i) not in special]

    # transformers 4's names that its data collators and utilities call (DataCollatorForWholeWordMask)
    def _convert_id_to_token(self, index: int) -> str | None:
        return self._tokenizer.id_to_token(int(index))

    def _convert_token_to_id_with_added_voc(self, token: str) -> int | None:
        return self._id(token)

    _convert_token_to_id = _convert_token_to_id_with_added_voc

    @property
    def added_tokens_encoder(self) -> dict[str, int]:
        """Added tokens' ids by content (transformers 4)."""
        return {t.content: i for i, t in self.added_tokens_decoder.items()}

    @property
    def special_tokens_map_extended(self) -> dict[str, Any]:
        """:attr:`special_tokens_map` with the special tokens as ``AddedToken`` objects (transformers 4)."""
        decoder = {t.content: t for t in self.added_tokens_decoder.values()}
        return {
            k: [decoder.get(t, t) for t in v] if isinstance(v, list) else decoder.get(v, v)
            for k, v in self.special_tokens_map.items()
        }

    @property
    def all_special_tokens_extended(self) -> list[Any]:
        """:attr:`all_special_tokens` as ``AddedToken`` objects where the vocabulary holds them (transformers 4)."""
        decoder = {t.content: t for t in self.added_tokens_decoder.values()}
        return [decoder.get(t, t) for t in self.all_special_tokens]

    def convert_tokens_to_string(self, tokens: list[str]) -> str:
        return (
            self._tokenizer.decoder.decode(tokens)
            if self._tokenizer.decoder is not None
            else " ".join(tokens)
        )
