"""BERT tokenizer on the ``tokenizers`` library, with transformers' ``BertTokenizerFast`` API.

``BertTokenizer`` (and its alias ``BertTokenizerFast``) loads ``tokenizer.json`` when a model folder has one,
or builds the WordPiece pipeline from ``vocab.txt`` (BertNormalizer + BertPreTokenizer + WordPiece +
``[CLS] A [SEP] B [SEP]`` template + WordPiece decoder) exactly as transformers converts a slow BERT tokenizer.
Calls return a :class:`fastbert.encoding.BatchEncoding` (re-exported here).

A tokenizer file that cannot be used (not UTF-8, not JSON, not a tokenizer, a field of the wrong type, a
vocabulary without its unk token) raises ``ValueError`` or ``OSError`` naming the file and what was expected.

transformers is not imported here: it is a test-only dependency.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import numbers
import os
import threading
import warnings
from collections.abc import Callable, Mapping, Sequence, Sized
from typing import Any

from tokenizers import AddedToken, Tokenizer, decoders, normalizers, pre_tokenizers, processors
from tokenizers.models import WordPiece

from . import hub
from .encoding import BatchEncoding, CharSpan, TokenSpan, _enum_value

logger = logging.getLogger(__name__)

__all__ = ["BatchEncoding", "BertTokenizer", "BertTokenizerFast", "CharSpan", "TokenSpan"]

VERY_LARGE_INTEGER = int(1e30)  # what transformers uses when a model has no maximum length
LARGE_INTEGER = int(1e20)

VOCAB_FILE = "vocab.txt"
TOKENIZER_FILE = "tokenizer.json"
TOKENIZER_CONFIG_FILE = "tokenizer_config.json"
SPECIAL_TOKENS_MAP_FILE = "special_tokens_map.json"

SPECIAL_TOKENS_ATTRIBUTES = [
    "bos_token",
    "eos_token",
    "unk_token",
    "sep_token",
    "pad_token",
    "cls_token",
    "mask_token",
]

_UNSET: Any = object()

_PADDING = ("longest", "max_length", "do_not_pad")
_TRUNCATION = ("longest_first", "only_first", "only_second", "do_not_truncate")

# transformers' from_pretrained arguments that mean nothing here
_IGNORED_LOAD_KWARGS = (
    "force_download",
    "resume_download",
    "proxies",
    "trust_remote_code",
    "use_fast",
    "_from_auto",
    "_commit_hash",
)
# tokenizer_config.json keys that describe the file or transformers' classes, not the tokenizer
_CONFIG_KEYS_IGNORED = (
    "tokenizer_class",
    "auto_map",
    "name_or_path",
    "processor_class",
    "backend",
    "is_local",
    "local_files_only",
    "model_input_names",
    "tokenizer_file",
    "vocab_file",
    "extra_special_tokens",
)
# per-call settings that transformers may save in tokenizer_config.json: not constructor state
_CALL_KEYS_IGNORED = (
    "max_length",
    "stride",
    "truncation_strategy",
    "pad_to_multiple_of",
    "pad_token_type_id",
)


def _to_py(obj: Any) -> Any:
    """Tensors, arrays and numpy scalars → python ints and lists."""
    if isinstance(obj, (int, float, str)) or obj is None:
        return obj
    if isinstance(obj, Mapping):
        return {k: _to_py(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_to_py(o) for o in obj]
    tolist = getattr(obj, "tolist", None)
    if callable(tolist):
        return tolist()
    return obj


def _token_content(value: Any) -> Any:
    """A special token as written in tokenizer_config / special_tokens_map (a str or an AddedToken dict) → str."""
    if isinstance(value, dict):
        return value.get("content")
    if isinstance(value, AddedToken):
        return value.content
    return value


# --------------------------------------------------------------------------------------------------------------
# reading tokenizer files: every error names the file and what was expected
# --------------------------------------------------------------------------------------------------------------


def _read_text(path: str) -> str:
    """The UTF-8 text of a tokenizer file."""
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except UnicodeDecodeError as e:
        raise ValueError(f"{path} is not UTF-8 text (byte {e.start}: {e.reason})") from None
    except IsADirectoryError:
        raise OSError(f"{path} is a directory, not a file") from None


def _json_type(value: Any) -> str:
    names = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}
    return names.get(type(value), "number")


def _parse_json_object(text: str, path: str) -> dict[str, Any]:
    """The JSON object that a tokenizer file holds."""
    if not text.strip():
        raise ValueError(f"{path} is empty: it should hold a JSON object")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not valid JSON ({e.msg} at line {e.lineno}, column {e.colno})") from None
    except RecursionError:
        raise ValueError(f"{path} is not a tokenizer file: its JSON is nested too deeply") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path} should hold a JSON object, not a JSON {_json_type(data)}")
    return data


def _read_json_object(path: str) -> dict[str, Any]:
    return _parse_json_object(_read_text(path), path)


def load_vocab(vocab_file: str) -> dict[str, int]:
    """vocab.txt → {token: index}, one token a line, as transformers reads it."""
    text = _read_text(vocab_file)
    if not text:
        raise ValueError(f"{vocab_file} is empty: a vocab.txt holds one token a line")
    lines = text.split("\n")
    if text.endswith("\n"):
        lines.pop()
    return {token: index for index, token in enumerate(lines)}


def _read_tokenizer_json(path: str) -> Tokenizer:
    """A ``tokenizers.Tokenizer`` from a tokenizer.json."""
    text = _read_text(path)
    try:
        return Tokenizer.from_str(text)
    except Exception as e:  # the tokenizers library raises a bare Exception for every kind of bad file
        _parse_json_object(text, path)  # empty, not JSON, not an object: say so
        raise ValueError(
            f"{path} is JSON but not a tokenizer.json that the tokenizers library can read ({e})"
        ) from None


def _check_unk_token(backend: Tokenizer, source: str) -> None:
    """WordPiece replaces unknown words by its unk token: without it in the vocabulary, encoding fails later."""
    model = backend.model
    if isinstance(model, WordPiece) and model.token_to_id(model.unk_token) is None:
        raise ValueError(
            f"{source}: the vocabulary has no unk_token {model.unk_token!r}; WordPiece needs it for unknown words"
        )


def _find_file(path: str, name: str, options: hub.HubOptions) -> str | None:
    """A tokenizer file of a folder or hub repository; None when there is none."""
    found = hub.resolve_file(path, name, hub=options, required=False)
    if found is None and os.path.isdir(path):
        candidate = os.path.join(path, options.subfolder, name)
        if os.path.isdir(candidate):
            raise OSError(f"{candidate} is a directory, not a file")
        if os.path.islink(candidate) and not os.path.exists(candidate):
            raise OSError(f"{candidate} is a symbolic link to nothing")
        if os.path.exists(candidate):
            raise OSError(f"{candidate} is not a regular file")
    return found


def _pop_hub_options(kwargs: dict[str, Any]) -> hub.HubOptions:
    """The hub options of a ``from_pretrained`` call, removed from ``kwargs`` with the ignored arguments."""
    legacy_token = kwargs.pop("use_auth_token", None)
    for key in _IGNORED_LOAD_KWARGS:
        kwargs.pop(key, None)
    options = hub.HubOptions.pop_from(kwargs)
    for key in hub.HUB_FIELDS:  # pop_from leaves the ones given as None
        kwargs.pop(key, None)
    if options.token is None and legacy_token is not None:
        options = dataclasses.replace(options, token=legacy_token)
    return options


# --------------------------------------------------------------------------------------------------------------
# settings of a tokenizer: what each may be (checked for the arguments and for the files)
# --------------------------------------------------------------------------------------------------------------


def _is_flag(value: Any) -> bool:
    return value is None or (isinstance(value, int) and value in (0, 1))


def _is_length(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, float):
        return value.is_integer() and value >= 1
    return value is None or (isinstance(value, int) and value >= 1)


def _is_token(value: Any) -> bool:
    if value is None or isinstance(value, (str, AddedToken)):
        return True
    return isinstance(value, Mapping) and isinstance(value.get("content"), str)


def _is_token_list(value: Any) -> bool:
    return value is None or (
        isinstance(value, (list, tuple)) and all(t is not None and _is_token(t) for t in value)
    )


_ADDED_TOKEN_FLAGS = ("single_word", "lstrip", "rstrip", "normalized", "special")


def _is_added_tokens_decoder(value: Any) -> bool:
    """``{id: token}``, a token being a str, an AddedToken or ``{"content": str, <flag>: bool, ...}``."""
    if value is None:
        return True
    if not isinstance(value, Mapping):
        return False
    for index, token in value.items():
        if not (isinstance(index, int) or (isinstance(index, str) and index.isdigit())):
            return False
        if token is None or not _is_token(token):
            return False
        if isinstance(token, Mapping) and any(
            not isinstance(token.get(flag, False), bool) for flag in _ADDED_TOKEN_FLAGS
        ):
            return False
    return True


_TOKEN = 'a string or an object with a string "content"'
_SETTINGS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "do_lower_case": (_is_flag, "true or false"),
    "do_basic_tokenize": (_is_flag, "true or false"),
    "tokenize_chinese_chars": (_is_flag, "true or false"),
    "strip_accents": (_is_flag, "true, false or null"),
    "clean_up_tokenization_spaces": (_is_flag, "true or false"),
    "model_max_length": (_is_length, "a whole number of tokens, at least 1"),
    "padding_side": (lambda v: v in ("right", "left"), "'right' or 'left'"),
    "truncation_side": (lambda v: v in ("right", "left"), "'right' or 'left'"),
    "never_split": (lambda v: v is None or _is_str_list(v), "a list of strings"),
    "additional_special_tokens": (_is_token_list, f"a list of tokens, each {_TOKEN}"),
    "added_tokens_decoder": (
        _is_added_tokens_decoder,
        f"an object {{id: token}}, each token {_TOKEN} and true/false flags ({', '.join(_ADDED_TOKEN_FLAGS)})",
    ),
    **{name: (_is_token, _TOKEN) for name in SPECIAL_TOKENS_ATTRIBUTES},
}


def _check_settings(settings: Mapping[str, Any], where: str | None = None) -> None:
    """``ValueError`` naming the setting (and the file ``where`` it was read from) that is not what it may be."""
    for name, value in settings.items():
        check = _SETTINGS.get(name)
        if check is not None and value is not _UNSET and not check[0](value):
            shown = repr(value)
            shown = shown if len(shown) <= 80 else shown[:77] + "..."
            prefix = f"{where}: " if where else ""
            raise ValueError(f"{prefix}{name} should be {check[1]}, got {shown}")


def _read_settings(path: str, options: hub.HubOptions, overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Constructor arguments from tokenizer_config.json and special_tokens_map.json, when present, then
    ``overrides`` (a bad field that an override replaces is not an error)."""
    settings: dict[str, Any] = {}
    config_file = _find_file(path, TOKENIZER_CONFIG_FILE, options)
    if config_file is not None:
        config = _read_json_object(config_file)
        _check_settings({k: v for k, v in config.items() if k not in overrides}, config_file)
        settings.update(config)
    special_file = _find_file(path, SPECIAL_TOKENS_MAP_FILE, options)
    if special_file is not None:
        special = _read_json_object(special_file)
        special = {k: v for k, v in special.items() if k not in overrides}
        _check_settings(special, special_file)
        for key, value in special.items():
            if key == "additional_special_tokens":
                settings[key] = [_token_content(v) for v in value or ()]
            else:
                settings[key] = _token_content(value)
    for key in _CONFIG_KEYS_IGNORED:
        settings.pop(key, None)
    settings.update(overrides)
    return settings


# --------------------------------------------------------------------------------------------------------------
# building the tokenizers backend
# --------------------------------------------------------------------------------------------------------------


def _build_wordpiece_backend(vocab: dict[str, int], unk_token: str) -> Tokenizer:
    """transformers' conversion of a slow BERT tokenizer, with the default BertNormalizer."""
    backend = Tokenizer(
        WordPiece(
            vocab, unk_token=str(unk_token), max_input_chars_per_word=100, continuing_subword_prefix="##"
        )
    )
    backend.normalizer = normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=True
    )
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    backend.decoder = decoders.WordPiece(prefix="##")
    return backend


def _load_backend(
    tokenizer_object: Tokenizer | None,
    tokenizer_file: str | None,
    vocab_file: str | None,
    vocab: Mapping[str, int] | str | os.PathLike | None,
    unk_token: str,
) -> Tokenizer:
    """The backend from the first source given: a Tokenizer, a tokenizer.json, a vocab.txt or a vocab dict.

    Its padding and truncation are dropped: they are set per call.
    """
    if tokenizer_object is not None:
        backend = Tokenizer.from_str(tokenizer_object.to_str())
    elif tokenizer_file is not None:
        if not os.path.exists(tokenizer_file):
            raise OSError(f"tokenizer_file {tokenizer_file} does not exist")
        backend = _read_tokenizer_json(tokenizer_file)
        _check_unk_token(backend, tokenizer_file)
    else:
        source = "vocab"
        if vocab is None and vocab_file is not None:
            if not os.path.isfile(vocab_file):
                raise ValueError(f"Can't find a vocabulary file at path '{vocab_file}'.")
            vocab, source = load_vocab(vocab_file), vocab_file
        elif isinstance(vocab, (str, os.PathLike)):
            vocab, source = load_vocab(str(vocab)), str(vocab)
        if vocab is None:
            raise ValueError(
                "BertTokenizer needs a vocabulary: pass vocab_file= (vocab.txt), tokenizer_file= (tokenizer.json), "
                "vocab= (a dict), or use BertTokenizer.from_pretrained(folder_or_hub_id)"
            )
        backend = _build_wordpiece_backend(dict(vocab), unk_token)
        _check_unk_token(backend, source)
    backend.no_padding()
    backend.no_truncation()
    return backend


def _apply_normalizer_options(
    backend: Tokenizer, do_lower_case: Any, strip_accents: Any, tokenize_chinese_chars: Any
) -> tuple[bool, bool | None, bool]:
    """Set the BertNormalizer of ``backend`` from the arguments; those left unset keep the backend's own.

    Returns the settings in force (transformers' defaults where the backend has no BertNormalizer).
    """
    state = json.loads(backend.normalizer.__getstate__()) if backend.normalizer is not None else {}
    if state.get("type") != "BertNormalizer":
        return (
            bool(True if do_lower_case is _UNSET else do_lower_case),
            None if strip_accents is _UNSET else strip_accents,
            bool(True if tokenize_chinese_chars is _UNSET else tokenize_chinese_chars),
        )
    wanted = {
        "lowercase": bool(state.get("lowercase", True) if do_lower_case is _UNSET else do_lower_case),
        "strip_accents": state.get("strip_accents") if strip_accents is _UNSET else strip_accents,
        "handle_chinese_chars": bool(
            state.get("handle_chinese_chars", True)
            if tokenize_chinese_chars is _UNSET
            else tokenize_chinese_chars
        ),
    }
    if any(state.get(k) != v for k, v in wanted.items()):
        backend.normalizer = normalizers.BertNormalizer(clean_text=state.get("clean_text", True), **wanted)
    return wanted["lowercase"], wanted["strip_accents"], wanted["handle_chinese_chars"]


def _add_special_tokens(backend: Tokenizer, specials: list[str]) -> None:
    """Special tokens are matched whole in the raw text, before normalization: those the backend lacks."""
    existing = {t.content for t in backend.get_added_tokens_decoder().values()}
    missing = [t for t in dict.fromkeys(specials) if t not in existing]
    if missing:
        backend.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in missing])


def _add_config_tokens(backend: Tokenizer, added_tokens_decoder: Mapping | None, specials: list[str]) -> None:
    """The added tokens a tokenizer_config lists (when the backend was built from vocab.txt)."""
    existing = {t.content for t in backend.get_added_tokens_decoder().values()}
    for entry in (added_tokens_decoder or {}).values():
        if isinstance(entry, AddedToken):
            token = entry
        else:
            content = _token_content(entry)
            if not content:
                continue
            flags = entry if isinstance(entry, dict) else {}
            special = flags.get("special", False)
            token = AddedToken(
                content,
                single_word=flags.get("single_word", False),
                lstrip=flags.get("lstrip", False),
                rstrip=flags.get("rstrip", False),
                normalized=flags.get("normalized", not special),
                special=special,
            )
        if token.content in existing or token.content in specials:
            continue
        if token.special:
            backend.add_special_tokens([token])
        else:
            backend.add_tokens([token])


def _add_never_split(backend: Tokenizer, never_split: list[str] | None, specials: list[str]) -> None:
    """``never_split`` tokens of the vocabulary are matched whole, like transformers' slow tokenizer does."""
    if not never_split:
        return
    in_vocab = [t for t in never_split if backend.token_to_id(t) is not None and t not in specials]
    if in_vocab:
        backend.add_tokens([AddedToken(t, normalized=False) for t in in_vocab])
    skipped = [t for t in never_split if backend.token_to_id(t) is None]
    if skipped:
        logger.warning(f"never_split tokens not in the vocabulary are split as usual: {skipped}")


def _set_template(backend: Tokenizer, cls_token: str, cls_id: int, sep_token: str, sep_id: int) -> None:
    backend.post_processor = processors.TemplateProcessing(
        single=f"{cls_token}:0 $A:0 {sep_token}:0",
        pair=f"{cls_token}:0 $A:0 {sep_token}:0 $B:1 {sep_token}:1",
        special_tokens=[(cls_token, cls_id), (sep_token, sep_id)],
    )


def _ensure_template(backend: Tokenizer, cls_token: str, sep_token: str) -> None:
    """The ``[CLS] A [SEP] B [SEP]`` template, unless the backend brought one with the same tokens and ids."""
    cls_id, sep_id = backend.token_to_id(cls_token), backend.token_to_id(sep_token)
    if cls_id is None or sep_id is None:
        return
    post = backend.post_processor
    state = json.loads(post.__getstate__()) if post is not None else {}
    if state.get("type") == "TemplateProcessing":
        ids = {k: v.get("ids") for k, v in state.get("special_tokens", {}).items()}
        keep = ids.get(cls_token) == [cls_id] and ids.get(sep_token) == [sep_id]
    elif state.get("type") == "BertProcessing":
        keep = state.get("cls") == [cls_token, cls_id] and state.get("sep") == [sep_token, sep_id]
    else:
        keep = False
    if not keep:
        _set_template(backend, cls_token, cls_id, sep_token, sep_id)


def _is_str_list(x: Any) -> bool:
    return isinstance(x, (list, tuple)) and all(isinstance(t, str) for t in x)


def _is_valid_text_input(t: Any) -> bool:
    if isinstance(t, str):
        return True
    if isinstance(t, (list, tuple)):
        if len(t) == 0:
            return True
        if isinstance(t[0], str):
            return True
        if isinstance(t[0], (list, tuple)):
            return len(t[0]) == 0 or isinstance(t[0][0], str)
    return False


_TEXT_TYPE_ERROR = (
    "text input must be of type `str` (single example), `list[str]` (batch or single pretokenized example) "
    "or `list[list[str]]` (batch of pretokenized examples)."
)


# --------------------------------------------------------------------------------------------------------------
# the tokenizer
# --------------------------------------------------------------------------------------------------------------


class BertTokenizer:
    """BERT WordPiece tokenizer with the API of transformers' ``BertTokenizerFast``.

    Construct it from a model folder or hub id with :meth:`from_pretrained`, or directly from a ``vocab.txt``
    (``vocab_file=``), a ``tokenizer.json`` (``tokenizer_file=``), a ``{token: id}`` dict (``vocab=``) or a
    ``tokenizers.Tokenizer`` (``tokenizer_object=``).

    ``do_lower_case``, ``strip_accents`` and ``tokenize_chinese_chars`` set the BertNormalizer; left out with
    a ``tokenizer.json``, the file's own normalizer settings are kept. ``never_split`` tokens found in the
    vocabulary are matched whole in the raw text (like transformers' slow tokenizer) instead of being split
    on punctuation.
    """

    vocab_files_names = {"vocab_file": VOCAB_FILE, "tokenizer_file": TOKENIZER_FILE}
    model_input_names = ["input_ids", "token_type_ids", "attention_mask"]
    is_fast = True
    slow_tokenizer_class = None

    def __init__(
        self,
        vocab_file: str | None = None,
        tokenizer_file: str | None = None,
        do_lower_case: bool = _UNSET,
        do_basic_tokenize: bool = True,
        never_split: Sequence[str] | None = None,
        unk_token: str = "[UNK]",
        sep_token: str = "[SEP]",
        pad_token: str = "[PAD]",
        cls_token: str = "[CLS]",
        mask_token: str = "[MASK]",
        tokenize_chinese_chars: bool = _UNSET,
        strip_accents: bool | None = _UNSET,
        *,
        vocab: dict[str, int] | str | None = None,
        tokenizer_object: Tokenizer | None = None,
        model_max_length: int | None = None,
        padding_side: str = "right",
        truncation_side: str = "right",
        clean_up_tokenization_spaces: bool = True,
        additional_special_tokens: Sequence[str] | None = None,
        bos_token: str | None = None,
        eos_token: str | None = None,
        name_or_path: str = "",
        added_tokens_decoder: Mapping | None = None,
        **kwargs: Any,
    ):
        self._lock = threading.RLock()
        if isinstance(vocab_file, Mapping) and vocab is None:  # BertTokenizer({token: id}) as transformers 5
            vocab, vocab_file = dict(vocab_file), None
        # every argument that has a rule in _SETTINGS, checked before anything is built
        _check_settings({name: value for name, value in locals().items() if name in _SETTINGS})
        self.name_or_path = str(name_or_path or kwargs.pop("_name_or_path", "") or "")
        self.unk_token, self.sep_token, self.pad_token, self.cls_token, self.mask_token = (
            _token_content(t) for t in (unk_token, sep_token, pad_token, cls_token, mask_token)
        )
        self.bos_token = _token_content(bos_token)
        self.eos_token = _token_content(eos_token)
        self.additional_special_tokens = [_token_content(t) for t in (additional_special_tokens or [])]

        backend = _load_backend(tokenizer_object, tokenizer_file, vocab_file, vocab, self.unk_token)
        self.do_lower_case, self.strip_accents, self.tokenize_chinese_chars = _apply_normalizer_options(
            backend, do_lower_case, strip_accents, tokenize_chinese_chars
        )
        self.do_basic_tokenize = do_basic_tokenize
        self.never_split = list(never_split) if never_split else None
        specials = [t for t in self._special_token_values() if t]
        _add_special_tokens(backend, specials)
        _add_config_tokens(backend, added_tokens_decoder, specials)
        _add_never_split(backend, self.never_split, specials)
        _ensure_template(backend, self.cls_token, self.sep_token)
        self._tokenizer = backend

        self.model_max_length = int(VERY_LARGE_INTEGER if model_max_length is None else model_max_length)
        self.padding_side = padding_side
        self.truncation_side = truncation_side
        self.clean_up_tokenization_spaces = bool(clean_up_tokenization_spaces)
        self.pad_token_type_id = 0
        self._warned: set[str] = set()
        self.deprecation_warnings: dict[str, bool] = {}  # read by transformers' data collators
        for key in _CALL_KEYS_IGNORED:
            kwargs.pop(key, None)
        self.init_kwargs = {
            "do_lower_case": self.do_lower_case,
            "do_basic_tokenize": self.do_basic_tokenize,
            "never_split": self.never_split,
            "unk_token": self.unk_token,
            "sep_token": self.sep_token,
            "pad_token": self.pad_token,
            "cls_token": self.cls_token,
            "mask_token": self.mask_token,
            "tokenize_chinese_chars": self.tokenize_chinese_chars,
            "strip_accents": self.strip_accents,
            **{k: v for k, v in kwargs.items() if _is_jsonable(v)},
        }

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

    # ---------------------------------------------------------------------------------------------------------
    # loading and saving
    # ---------------------------------------------------------------------------------------------------------
    @classmethod
    def from_pretrained(
        cls, pretrained_model_name_or_path: str | os.PathLike, *init_inputs: Any, **kwargs: Any
    ) -> BertTokenizer:
        """Load from a model folder or hub id that holds ``tokenizer.json`` and/or ``vocab.txt``, with
        ``tokenizer_config.json`` and ``special_tokens_map.json`` when present; ``kwargs`` override them.

        The hub options are those of :class:`fastbert.hub.HubOptions` (``revision``, ``cache_dir``,
        ``local_files_only``, ``token``, ``subfolder``); transformers' ``use_auth_token`` is read as ``token``.
        """
        path = str(pretrained_model_name_or_path)
        options = _pop_hub_options(kwargs)
        tokenizer_file = kwargs.pop("tokenizer_file", None) or _find_file(path, TOKENIZER_FILE, options)
        vocab_file = kwargs.pop("vocab_file", None) or _find_file(path, VOCAB_FILE, options)
        if tokenizer_file is None and vocab_file is None:
            where = os.path.join(path, options.subfolder) if options.subfolder else path
            if os.path.isdir(path):
                raise OSError(
                    f"{where} has neither {TOKENIZER_FILE} nor {VOCAB_FILE}: it is not a BERT tokenizer folder"
                )
            raise OSError(
                f"could not find {TOKENIZER_FILE} or {VOCAB_FILE} for {where!r}: pass a local folder that holds them, "
                "or a hub model id of a BERT tokenizer (the hub may be unreachable)"
            )
        settings = _read_settings(path, options, kwargs)
        settings.setdefault("name_or_path", path)
        # A tokenizer.json decides the vocabulary; vocab.txt alone is the fallback.
        return cls(*init_inputs, vocab_file=vocab_file, tokenizer_file=tokenizer_file, **settings)

    def save_vocabulary(self, save_directory: str, filename_prefix: str | None = None) -> tuple[str]:
        """Write ``vocab.txt`` (``{prefix}-vocab.txt``) to ``save_directory``; returns its path in a tuple."""
        if not os.path.isdir(save_directory):
            raise OSError(f"Vocabulary path ({save_directory}) should be a directory")
        model = self._tokenizer.model
        if not isinstance(model, WordPiece):
            raise ValueError("save_vocabulary needs a WordPiece model")
        files = model.save(save_directory, filename_prefix)
        return tuple(files)

    def _config_for_save(self) -> dict[str, Any]:
        config = dict(self.init_kwargs)
        config.update(
            {
                "do_lower_case": self.do_lower_case,
                "strip_accents": self.strip_accents,
                "tokenize_chinese_chars": self.tokenize_chinese_chars,
                "model_max_length": self.model_max_length,
                "padding_side": self.padding_side,
                "truncation_side": self.truncation_side,
                "clean_up_tokenization_spaces": self.clean_up_tokenization_spaces,
                "tokenizer_class": "BertTokenizer",
                "model_input_names": list(self.model_input_names),
            }
        )
        config.update(self.special_tokens_map)
        return config

    def save_pretrained(
        self, save_directory: str | os.PathLike, filename_prefix: str | None = None, **kwargs: Any
    ) -> tuple[str, ...]:
        """Write tokenizer_config.json, special_tokens_map.json, vocab.txt and tokenizer.json; transformers'
        ``AutoTokenizer`` loads the folder back to the same ids. Returns the written paths."""
        save_directory = str(save_directory)
        if os.path.isfile(save_directory):
            raise OSError(f"Provided path ({save_directory}) should be a directory, not a file")
        os.makedirs(save_directory, exist_ok=True)
        prefix = f"{filename_prefix}-" if filename_prefix else ""
        config_path = os.path.join(save_directory, prefix + TOKENIZER_CONFIG_FILE)
        special_path = os.path.join(save_directory, prefix + SPECIAL_TOKENS_MAP_FILE)
        tokenizer_path = os.path.join(save_directory, prefix + TOKENIZER_FILE)

        config = self._config_for_save()
        added = {}
        for index, token in sorted(self._tokenizer.get_added_tokens_decoder().items()):
            added[str(index)] = {
                "content": token.content,
                "lstrip": token.lstrip,
                "normalized": token.normalized,
                "rstrip": token.rstrip,
                "single_word": token.single_word,
                "special": token.special,
            }
        config["added_tokens_decoder"] = added
        with open(config_path, "w", encoding="utf-8") as f:
            f.write(json.dumps(config, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
        with open(special_path, "w", encoding="utf-8") as f:
            f.write(json.dumps(self.special_tokens_map, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
        vocab_files = self.save_vocabulary(save_directory, filename_prefix=filename_prefix)
        with self._lock:
            clean = Tokenizer.from_str(self._tokenizer.to_str())
        clean.no_padding()
        clean.no_truncation()
        clean.save(tokenizer_path)
        return (config_path, special_path, *vocab_files, tokenizer_path)

    # ---------------------------------------------------------------------------------------------------------
    # vocabulary and special tokens
    # ---------------------------------------------------------------------------------------------------------
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

    unk_token_id = property(lambda self: self._id(self.unk_token))
    sep_token_id = property(lambda self: self._id(self.sep_token))
    pad_token_id = property(lambda self: self._id(self.pad_token))
    cls_token_id = property(lambda self: self._id(self.cls_token))
    mask_token_id = property(lambda self: self._id(self.mask_token))
    bos_token_id = property(lambda self: self._id(self.bos_token))
    eos_token_id = property(lambda self: self._id(self.eos_token))

    @property
    def _pad_token(self) -> str | None:  # transformers' data collators look at it
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
        """Add tokens to the vocabulary; returns how many were new."""
        if isinstance(new_tokens, (str, AddedToken)):
            new_tokens = [new_tokens]
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
                added += self.add_tokens([value], special_tokens=True)
                setattr(self, key, _token_content(value))
                self.init_kwargs[key] = _token_content(value)
            else:
                raise ValueError(f"Key {key} is not a special token")
        if "cls_token" in special_tokens_dict or "sep_token" in special_tokens_dict:
            _set_template(
                self._tokenizer, self.cls_token, self.cls_token_id, self.sep_token, self.sep_token_id
            )
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

    def convert_tokens_to_string(self, tokens: list[str]) -> str:
        return (
            self._tokenizer.decoder.decode(tokens)
            if self._tokenizer.decoder is not None
            else " ".join(tokens)
        )

    def num_special_tokens_to_add(self, pair: bool = False) -> int:
        return 3 if pair else 2

    @property
    def max_len_single_sentence(self) -> int:
        return self.model_max_length - self.num_special_tokens_to_add(pair=False)

    @property
    def max_len_sentences_pair(self) -> int:
        return self.model_max_length - self.num_special_tokens_to_add(pair=True)

    # the four methods of BERT's documentation (transformers 4 semantics) ---------------------------------------
    def build_inputs_with_special_tokens(
        self, token_ids_0: list[int], token_ids_1: list[int] | None = None
    ) -> list[int]:
        """``[CLS] A [SEP]`` or ``[CLS] A [SEP] B [SEP]``."""
        output = [self.cls_token_id] + list(token_ids_0) + [self.sep_token_id]
        if token_ids_1 is not None:
            output += list(token_ids_1) + [self.sep_token_id]
        return output

    def get_special_tokens_mask(
        self,
        token_ids_0: list[int],
        token_ids_1: list[int] | None = None,
        already_has_special_tokens: bool = False,
    ) -> list[int]:
        """1 for a special token, 0 for a sequence token, of the sequence(s) as built by
        ``build_inputs_with_special_tokens`` (or as given, with ``already_has_special_tokens``)."""
        if already_has_special_tokens:
            if token_ids_1 is not None:
                raise ValueError(
                    "You should not supply a second sequence if the provided sequence of "
                    "ids is already formatted with special tokens for the model."
                )
            special = set(self.all_special_ids)
            return [1 if token in special else 0 for token in token_ids_0]
        if token_ids_1 is not None:
            return [1] + [0] * len(token_ids_0) + [1] + [0] * len(token_ids_1) + [1]
        return [1] + [0] * len(token_ids_0) + [1]

    def create_token_type_ids_from_sequences(
        self, token_ids_0: list[int], token_ids_1: list[int] | None = None
    ) -> list[int]:
        """0 for ``[CLS] A [SEP]``, 1 for ``B [SEP]``."""
        first = [0] * (len(token_ids_0) + 2)
        if token_ids_1 is None:
            return first
        return first + [1] * (len(token_ids_1) + 1)

    # ---------------------------------------------------------------------------------------------------------
    # encoding
    # ---------------------------------------------------------------------------------------------------------
    def _strategies(
        self,
        padding: Any = False,
        truncation: Any = None,
        max_length: int | None = None,
        pad_to_multiple_of: int | None = None,
        verbose: bool = True,
    ) -> tuple[str, str, int | None]:
        """transformers' _get_padding_truncation_strategies: → (padding, truncation, max_length)."""
        _check_count("max_length", max_length)
        _check_count("pad_to_multiple_of", pad_to_multiple_of)
        padding, truncation = _enum_value(padding), _enum_value(truncation)
        if max_length is not None and padding is False and truncation is None:
            self._warn_once(
                "truncation-not-explicitly-activated",
                verbose,
                "Truncation was not explicitly activated but `max_length` is provided a specific value, please"
                " use `truncation=True` to explicitly truncate examples to max length. Defaulting to"
                " 'longest_first' truncation strategy. If you encode pairs of sequences (GLUE-style) with the"
                " tokenizer you can select this strategy more precisely by providing a specific strategy to"
                " `truncation`.",
            )
            truncation = "longest_first"
        if (
            padding is True
            and verbose
            and max_length is not None
            and truncation in (None, False, "do_not_truncate")
        ):
            warnings.warn(
                "`max_length` is ignored when `padding`=`True` and there is no truncation strategy. "
                "To pad to max length, use `padding='max_length'`.",
                stacklevel=3,
            )
        padding_strategy = _strategy("padding", padding, _PADDING, "longest", "do_not_pad")
        truncation_strategy = _strategy(
            "truncation", truncation, _TRUNCATION, "longest_first", "do_not_truncate"
        )

        if max_length is None and self.model_max_length > LARGE_INTEGER:
            if padding_strategy == "max_length":
                self._warn_once(
                    "asking-to-pad-to-max_length",
                    verbose,
                    "Asking to pad to max_length but no maximum length is provided and the model has no "
                    "predefined maximum length. Default to no padding.",
                )
                padding_strategy = "do_not_pad"
            if truncation_strategy != "do_not_truncate":
                self._warn_once(
                    "asking-to-truncate-to-max_length",
                    verbose,
                    "Asking to truncate to max_length but no maximum length is provided and the model has "
                    "no predefined maximum length. Default to no truncation.",
                )
                truncation_strategy = "do_not_truncate"
        elif max_length is None and (
            padding_strategy == "max_length" or truncation_strategy != "do_not_truncate"
        ):
            max_length = self.model_max_length

        if padding_strategy != "do_not_pad" and (self.pad_token is None or self.pad_token_id is None):
            raise ValueError(
                "Asking to pad but the tokenizer does not have a padding token. Please select a token to use as "
                "`pad_token` `(tokenizer.pad_token = tokenizer.eos_token e.g.)` or add a new pad token via "
                "`tokenizer.add_special_tokens({'pad_token': '[PAD]'})`."
            )
        if (
            truncation_strategy != "do_not_truncate"
            and padding_strategy != "do_not_pad"
            and pad_to_multiple_of
            and max_length is not None
            and max_length % pad_to_multiple_of != 0
        ):
            raise ValueError(
                "Truncation and padding are both activated but "
                f"truncation length ({max_length}) is not a multiple of pad_to_multiple_of ({pad_to_multiple_of})."
            )
        return padding_strategy, truncation_strategy, max_length

    def _warn_once(self, key: str, verbose: bool, message: str) -> None:
        """Log ``message`` the first time ``key`` comes up for this tokenizer (never when not ``verbose``)."""
        if verbose and key not in self._warned:
            self._warned.add(key)
            logger.warning(message)

    def _configure_backend(
        self,
        padding_strategy: str,
        truncation_strategy: str,
        max_length: int | None,
        stride: int,
        pad_to_multiple_of: int | None,
        padding_side: str | None,
    ) -> None:
        backend = self._tokenizer
        if truncation_strategy == "do_not_truncate":
            if backend.truncation is not None:
                backend.no_truncation()
        else:
            target = {
                "max_length": max_length,
                "stride": stride,
                "strategy": truncation_strategy,
                "direction": self.truncation_side,
            }
            current = backend.truncation
            if current is None or {k: current.get(k) for k in target} != target:
                backend.enable_truncation(**target)
        if padding_strategy == "do_not_pad":
            if backend.padding is not None:
                backend.no_padding()
        else:
            side = padding_side if padding_side is not None else self.padding_side
            if side not in ("right", "left"):
                raise ValueError(
                    f"Padding side should be selected between 'right' and 'left', current value: {side}"
                )
            target = {
                "length": max_length if padding_strategy == "max_length" else None,
                "direction": side,
                "pad_id": self.pad_token_id,
                "pad_token": self.pad_token,
                "pad_type_id": self.pad_token_type_id,
                "pad_to_multiple_of": pad_to_multiple_of,
            }
            if backend.padding != target:
                backend.enable_padding(**target)

    def _warn_too_long(self, encodings: list, max_length: int | None, verbose: bool) -> None:
        """transformers' warning (once) when a sequence is longer than the model takes and nothing truncates."""
        if max_length is not None or not verbose or "sequence-too-long" in self._warned:
            return
        longest = max((len(e) for e in encodings), default=0)
        if longest > self.model_max_length:
            self._warned.add("sequence-too-long")
            logger.warning(
                "Token indices sequence length is longer than the specified maximum sequence length for this "
                f"model ({longest} > {self.model_max_length}). Running this sequence through the model will "
                "result in indexing errors"
            )

    def _output_keys(self, **wanted: bool | None) -> list[str]:
        """The keys a call returns: ``input_ids``, then each ``return_<key>`` asked for (None: the model's)."""
        keys = ["input_ids"]
        for key in ("token_type_ids", "attention_mask", "special_tokens_mask", "offset_mapping", "length"):
            flag = wanted[key]
            if flag or (flag is None and key in self.model_input_names):
                keys.append(key)
        return keys

    def __call__(
        self,
        text: Any = None,
        text_pair: Any = None,
        add_special_tokens: bool = True,
        padding: bool | str = False,
        truncation: bool | str | None = None,
        max_length: int | None = None,
        stride: int = 0,
        is_split_into_words: bool = False,
        pad_to_multiple_of: int | None = None,
        padding_side: str | None = None,
        return_tensors: str | None = None,
        return_token_type_ids: bool | None = None,
        return_attention_mask: bool | None = None,
        return_overflowing_tokens: bool = False,
        return_special_tokens_mask: bool = False,
        return_offsets_mapping: bool = False,
        return_length: bool = False,
        verbose: bool = True,
        **kwargs: Any,
    ) -> BatchEncoding:
        """Tokenize a text, a batch of texts, pairs (``text_pair``) or pre-tokenized words
        (``is_split_into_words=True``) into model inputs, as transformers' ``BertTokenizerFast`` does."""
        if text is None:
            if kwargs.get("text_target") is not None:
                raise ValueError(
                    "fastbert's BertTokenizer does not take `text_target`: BERT has no target text"
                )
            raise ValueError("You need to specify either `text` or `text_target`.")
        kwargs.pop("text_target", None)
        kwargs.pop("split_special_tokens", None)
        if kwargs:
            logger.warning(f"Keyword arguments {kwargs} not recognized.")
        _check_count("stride", stride)
        batch, is_batched = _as_batch(text, text_pair, is_split_into_words)
        padding_strategy, truncation_strategy, max_length = self._strategies(
            padding, truncation, max_length, pad_to_multiple_of, verbose
        )
        with self._lock:
            self._configure_backend(
                padding_strategy, truncation_strategy, max_length, stride, pad_to_multiple_of, padding_side
            )
            encodings = self._tokenizer.encode_batch(
                batch, add_special_tokens=add_special_tokens, is_pretokenized=is_split_into_words
            )
        keys = self._output_keys(
            token_type_ids=return_token_type_ids,
            attention_mask=return_attention_mask,
            special_tokens_mask=return_special_tokens_mask,
            offset_mapping=return_offsets_mapping,
            length=return_length,
        )
        output = _batch_encoding(encodings, keys, return_overflowing_tokens, return_tensors)
        self._warn_too_long(output.encodings, max_length, verbose)
        if not is_batched and return_tensors is None and not return_overflowing_tokens:
            # one example: its rows unwrapped (``length`` stays a one-item list, as in transformers)
            output = BatchEncoding(
                {k: (v[0] if len(v) > 0 and isinstance(v[0], list) else v) for k, v in output.items()},
                output.encodings,
            )
        return output

    def encode_plus(self, text: Any, text_pair: Any = None, **kwargs: Any) -> BatchEncoding:
        return self(text, text_pair, **kwargs)

    def batch_encode_plus(self, batch_text_or_text_pairs: Sequence, **kwargs: Any) -> BatchEncoding:
        if not isinstance(batch_text_or_text_pairs, (list, tuple)):
            raise TypeError(
                f"batch_text_or_text_pairs has to be a list or a tuple (got {type(batch_text_or_text_pairs)})"
            )
        return self(list(batch_text_or_text_pairs), **kwargs)

    def encode(
        self,
        text: Any,
        text_pair: Any = None,
        add_special_tokens: bool = True,
        padding: bool | str = False,
        truncation: bool | str | None = None,
        max_length: int | None = None,
        stride: int = 0,
        return_tensors: str | None = None,
        **kwargs: Any,
    ) -> Any:
        """The ``input_ids`` of one text (or pair)."""
        return self(
            text,
            text_pair,
            add_special_tokens=add_special_tokens,
            padding=padding,
            truncation=truncation,
            max_length=max_length,
            stride=stride,
            return_tensors=return_tensors,
            **kwargs,
        )["input_ids"]

    def tokenize(
        self, text: str, pair: str | None = None, add_special_tokens: bool = False, **kwargs: Any
    ) -> list[str]:
        """WordPiece tokens of a text (without [CLS]/[SEP] unless ``add_special_tokens``)."""
        if not isinstance(text, str):
            raise TypeError(f"tokenize() takes a str, got {type(text).__name__}")
        return self(text, pair, add_special_tokens=add_special_tokens, **kwargs).tokens()

    # ---------------------------------------------------------------------------------------------------------
    # decoding
    # ---------------------------------------------------------------------------------------------------------
    @staticmethod
    def clean_up_tokenization(out_string: str) -> str:
        """transformers' clean-up of spaces before punctuation and English contractions."""
        return (
            out_string.replace(" .", ".")
            .replace(" ?", "?")
            .replace(" !", "!")
            .replace(" ,", ",")
            .replace(" ' ", "'")
            .replace(" n't", "n't")
            .replace(" 'm", "'m")
            .replace(" 's", "'s")
            .replace(" 've", "'ve")
            .replace(" 're", "'re")
        )

    def decode(
        self,
        token_ids: Any,
        skip_special_tokens: bool = False,
        clean_up_tokenization_spaces: bool | None = None,
        **kwargs: Any,
    ) -> str:
        """Ids (int, list, tensor or array) → text."""
        token_ids = _to_py(token_ids)
        if isinstance(token_ids, int):
            token_ids = [token_ids]
        if not isinstance(token_ids, list) or any(isinstance(t, list) for t in token_ids):
            raise TypeError("decode() takes a sequence of ids (use batch_decode for a batch)")
        text = self._tokenizer.decode([int(t) for t in token_ids], skip_special_tokens=skip_special_tokens)
        if clean_up_tokenization_spaces is None:
            clean_up_tokenization_spaces = self.clean_up_tokenization_spaces
        if clean_up_tokenization_spaces:
            text = self.clean_up_tokenization(text)
        return text

    def batch_decode(
        self,
        sequences: Any,
        skip_special_tokens: bool = False,
        clean_up_tokenization_spaces: bool | None = None,
        **kwargs: Any,
    ) -> list[str]:
        return [
            self.decode(
                seq,
                skip_special_tokens=skip_special_tokens,
                clean_up_tokenization_spaces=clean_up_tokenization_spaces,
            )
            for seq in _to_py(sequences)
        ]

    # ---------------------------------------------------------------------------------------------------------
    # padding already-encoded inputs (data collators, pipelines)
    # ---------------------------------------------------------------------------------------------------------
    def pad(
        self,
        encoded_inputs: Any,
        padding: bool | str = True,
        max_length: int | None = None,
        pad_to_multiple_of: int | None = None,
        padding_side: str | None = None,
        return_attention_mask: bool | None = None,
        return_tensors: str | None = None,
        verbose: bool = True,
    ) -> BatchEncoding:
        """Pad encodings that were tokenized without padding, as transformers' ``pad`` does.

        ``encoded_inputs`` is one encoding (a dict / ``BatchEncoding`` of lists of ids), a dict of batched
        lists, or a list of encodings (each with the keys of the first). ``input_ids`` is padded with
        ``pad_token_id``, ``token_type_ids`` with ``pad_token_type_id`` (0), ``special_tokens_mask`` with 1
        and ``attention_mask`` with 0 (built as all ones first where absent, unless
        ``return_attention_mask=False``); every other key (``labels``, ``offset_mapping``, ``length``...)
        is left as it is. ``padding``: ``True``/``"longest"`` (the longest of the batch), ``"max_length"``
        (``max_length``, else ``model_max_length``), ``False``/``"do_not_pad"``; then up to a multiple of
        ``pad_to_multiple_of``. Sequences longer than the target are kept whole. ``padding_side`` defaults
        to the tokenizer's. Tensors or arrays in give tensors or arrays out unless ``return_tensors`` says
        otherwise (``"pt"``, ``"np"`` or None for lists); a key whose rows still differ in length cannot
        become a tensor and raises ``ValueError`` naming it. Returns a ``BatchEncoding`` without encodings.
        """
        if padding_side not in (None, "right", "left"):
            raise ValueError(f"padding_side should be 'right' or 'left', got {padding_side!r}")
        main = self.model_input_names[0]
        inputs = _as_dict_of_lists(encoded_inputs, main)
        required = inputs[main]
        if required is None or (isinstance(required, Sized) and len(required) == 0):
            if return_attention_mask:
                inputs["attention_mask"] = []
            return BatchEncoding(inputs)
        inputs, tensor_type = _tensors_to_lists(inputs, main)
        if return_tensors is None:
            return_tensors = tensor_type

        padding_strategy, _, max_length = self._strategies(
            padding, False, max_length, pad_to_multiple_of, verbose
        )
        settings = dict(
            padding_side=padding_side,
            pad_to_multiple_of=pad_to_multiple_of,
            return_attention_mask=return_attention_mask,
        )
        required = inputs[main]
        if not isinstance(required[0], (list, tuple)):  # one encoding
            out = self._pad(inputs, max_length, padding_strategy, **settings)
            return BatchEncoding(out, tensor_type=return_tensors)

        batch_size = len(required)
        for key, value in inputs.items():
            if not isinstance(value, Sized) or len(value) != batch_size:
                raise ValueError(
                    f"Some items in the output dictionary have a different batch size than others ({key})."
                )
        if padding_strategy == "longest":
            max_length = max(len(ids) for ids in required)
            padding_strategy = "max_length"
        rows = [
            self._pad({k: v[i] for k, v in inputs.items()}, max_length, padding_strategy, **settings)
            for i in range(batch_size)
        ]
        return BatchEncoding({k: [row[k] for row in rows] for k in rows[0]}, tensor_type=return_tensors)

    def _pad(
        self,
        encoded_inputs: dict,
        max_length: int | None,
        padding_strategy: str,
        *,
        pad_to_multiple_of: int | None,
        padding_side: str | None,
        return_attention_mask: bool | None,
    ) -> dict:
        """One encoding (a dict of lists) padded to ``max_length`` (rounded up to ``pad_to_multiple_of``)."""
        encoded_inputs = dict(encoded_inputs)
        if return_attention_mask is None:
            return_attention_mask = "attention_mask" in self.model_input_names
        main = self.model_input_names[0]
        length = len(encoded_inputs[main])
        if padding_strategy == "longest":
            max_length = length
        if max_length is not None and pad_to_multiple_of and max_length % pad_to_multiple_of != 0:
            max_length = (max_length // pad_to_multiple_of + 1) * pad_to_multiple_of
        if return_attention_mask and "attention_mask" not in encoded_inputs:
            encoded_inputs["attention_mask"] = [1] * length
        if padding_strategy == "do_not_pad" or max_length is None or length >= max_length:
            return encoded_inputs
        pads = {
            "attention_mask": 0,
            "token_type_ids": self.pad_token_type_id,
            "special_tokens_mask": 1,
            main: self.pad_token_id,
        }
        left = (padding_side if padding_side is not None else self.padding_side) == "left"
        for key, pad_value in pads.items():
            if key not in encoded_inputs or (key == "attention_mask" and not return_attention_mask):
                continue
            values = encoded_inputs[key]
            if not isinstance(values, (list, tuple)):
                raise ValueError(f"pad(): {key} should be a list of ids, got {type(values).__name__}")
            padding = [pad_value] * (max_length - length)
            encoded_inputs[key] = padding + list(values) if left else list(values) + padding
        return encoded_inputs

    # ---------------------------------------------------------------------------------------------------------
    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(name_or_path={self.name_or_path!r}, vocab_size={self.vocab_size}, "
            f"model_max_length={self.model_max_length}, is_fast=True, padding_side={self.padding_side!r}, "
            f"truncation_side={self.truncation_side!r}, special_tokens={self.special_tokens_map}, "
            f"do_lower_case={self.do_lower_case})"
        )

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_tokenizer"] = self._tokenizer.to_str()
        state.pop("_lock", None)
        return state

    def __setstate__(self, state: dict) -> None:
        state = dict(state)
        state["_tokenizer"] = Tokenizer.from_str(state["_tokenizer"])
        self.__dict__.update(state)
        self._lock = threading.RLock()


def _as_batch(text: Any, text_pair: Any, is_split_into_words: bool) -> tuple[list, bool]:
    """The inputs of a call as the list ``encode_batch`` takes, and whether they were a batch."""
    if not _is_valid_text_input(text):
        raise ValueError(_TEXT_TYPE_ERROR + f" Got {type(text).__name__}.")
    if text_pair is not None and not _is_valid_text_input(text_pair):
        raise ValueError(_TEXT_TYPE_ERROR + f" Got text_pair of type {type(text_pair).__name__}.")
    if is_split_into_words:
        is_batched = isinstance(text, (list, tuple)) and len(text) > 0 and isinstance(text[0], (list, tuple))
    else:
        is_batched = isinstance(text, (list, tuple))
    if is_batched:
        if isinstance(text_pair, str):
            raise TypeError(
                "when tokenizing batches of text, `text_pair` must be a list or tuple with the same length as `text`."
            )
        if text_pair is not None and len(text) != len(text_pair):
            raise ValueError(
                f"batch length of `text`: {len(text)} does not match batch length of `text_pair`: {len(text_pair)}."
            )
        batch = list(zip(text, text_pair)) if text_pair is not None else list(text)
    else:
        # as transformers: an empty text_pair of a single example means no pair
        batch = [(text, text_pair)] if text_pair else [text]
    for item in batch:
        if is_split_into_words:
            ok = _is_str_list(item) or (
                isinstance(item, tuple) and len(item) == 2 and all(_is_str_list(p) for p in item)
            )
        else:
            ok = isinstance(item, str) or (
                isinstance(item, (list, tuple)) and len(item) == 2 and _is_str_list(item)
            )
        if not ok:
            raise ValueError(_TEXT_TYPE_ERROR + f" Got an element {type(item).__name__}: {str(item)[:80]!r}.")
    return batch, is_batched


# the attribute of ``tokenizers.Encoding`` behind each output key
_ENCODING_ATTRIBUTES = {
    "input_ids": "ids",
    "token_type_ids": "type_ids",
    "attention_mask": "attention_mask",
    "special_tokens_mask": "special_tokens_mask",
    "offset_mapping": "offsets",
}


def _batch_encoding(
    encodings: list, keys: list[str], overflowing: bool, tensor_type: str | None
) -> BatchEncoding:
    """The ``keys`` of each encoding (and of its overflowing windows, with ``overflow_to_sample_mapping``)."""
    rows: list = []
    sample_mapping: list[int] = []
    for sample, encoding in enumerate(encodings):
        group = [encoding, *encoding.overflowing] if overflowing else [encoding]
        rows += group
        sample_mapping += [sample] * len(group)
    data: dict[str, list] = {
        key: [len(e) for e in rows]
        if key == "length"
        else [getattr(e, _ENCODING_ATTRIBUTES[key]) for e in rows]
        for key in keys
    }
    if overflowing:
        data["overflow_to_sample_mapping"] = sample_mapping
    return BatchEncoding(data, rows, tensor_type=tensor_type)


def _check_count(name: str, value: Any) -> None:
    """``value`` of the argument ``name`` is None or a whole number ≥ 0."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} should be a whole number or None, got {value!r}")
    if value < 0:
        raise ValueError(f"{name} should be at least 0, got {value}")


def _strategy(name: str, value: Any, choices: tuple[str, ...], when_true: str, when_false: str) -> str:
    """A ``padding`` / ``truncation`` argument (True, False, None or one of ``choices``) → its strategy name."""
    if value is True:
        return when_true
    if value is False or value is None:
        return when_false
    if isinstance(value, str) and value in choices:
        return value
    raise ValueError(f"{name}={value!r} is not valid: use True, False, " + ", ".join(map(repr, choices)))


def _as_dict_of_lists(encoded_inputs: Any, main: str) -> dict[str, Any]:
    """What ``pad`` takes (one encoding, a dict of batched lists, a list of encodings) as one dict."""
    if (
        isinstance(encoded_inputs, (list, tuple))
        and encoded_inputs
        and isinstance(encoded_inputs[0], Mapping)
    ):
        keys = list(encoded_inputs[0].keys())
        for index, example in enumerate(encoded_inputs):
            if not isinstance(example, Mapping):
                raise ValueError(
                    f"pad(): encoded_inputs[{index}] is a {type(example).__name__}, not an encoding (a dict)"
                )
            missing = [k for k in keys if k not in example]
            if missing:
                raise ValueError(
                    f"pad(): encoded_inputs[{index}] has no {missing[0]!r}, which encoded_inputs[0] has"
                )
        encoded_inputs = {key: [example[key] for example in encoded_inputs] for key in keys}
    if not isinstance(encoded_inputs, Mapping):
        raise ValueError(
            "pad() takes an encoding (a dict / BatchEncoding) or a list of encodings, "
            f"got {type(encoded_inputs).__name__}"
        )
    if main not in encoded_inputs:
        raise ValueError(
            "You should supply an encoding or a list of encodings to this method "
            f"that includes {main}, but you provided {list(encoded_inputs.keys())}"
        )
    return dict(encoded_inputs)


def _tensors_to_lists(inputs: dict[str, Any], main: str) -> tuple[dict[str, Any], str | None]:
    """Torch tensors or numpy arrays → python lists, and the tensor type they came as (None for lists)."""
    required = inputs[main]
    first = required[0]
    if isinstance(first, (list, tuple)):
        first = next((row[0] for row in required if len(row) != 0), first)
    if isinstance(first, (int, list, tuple)):
        return inputs, None
    kind = type(first).__module__.split(".")[0]
    tensor_type = None
    if kind == "torch" or (isinstance(required, list) and type(required[0]).__module__.startswith("torch")):
        tensor_type = "pt"
    elif kind == "numpy":
        tensor_type = "np"
    return {k: _to_py(v) for k, v in inputs.items()}, tensor_type


def _is_jsonable(value: Any) -> bool:
    try:
        json.dumps(value)
        return True
    except (TypeError, ValueError):
        return False


BertTokenizerFast = BertTokenizer
