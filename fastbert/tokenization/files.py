"""Loading tokenizer files: finding them (local folder or hub), reading them (every error names the file and what
was expected), checking the settings they hold, and the ``tokenizers`` backend from ``tokenizer.json``.

Nothing here depends on the tokenizer model (WordPiece, BPE, Unigram): a family module (``bert.py``,
``roberta.py``) says which vocabulary files it has and how to build its backend from them.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable, Mapping
from typing import Any

from tokenizers import AddedToken, Tokenizer
from tokenizers.models import WordPiece

from .. import hub

VERY_LARGE_INTEGER = int(1e30)  # transformers 4 and 5: a model without a maximum length
LARGE_INTEGER = int(1e20)

VOCAB_FILE = "vocab.txt"
TOKENIZER_FILE = "tokenizer.json"
TOKENIZER_CONFIG_FILE = "tokenizer_config.json"
SPECIAL_TOKENS_MAP_FILE = "special_tokens_map.json"
# the added tokens of folders saved before tokenizer_config.json listed them
ADDED_TOKENS_FILE = "added_tokens.json"

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


def _token_content(value: Any) -> Any:
    """A special token as written in tokenizer_config / special_tokens_map (a str or an AddedToken dict) → str."""
    if isinstance(value, dict):
        return value.get("content")
    if isinstance(value, AddedToken):
        return value.content
    return value


# --------------------------------------------------------------------------------------------------------------
# reading tokenizer files: every error names the file and what was expected


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


def _is_str_list(x: Any) -> bool:
    return isinstance(x, (list, tuple)) and all(isinstance(t, str) for t in x)


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
    "add_prefix_space": (_is_flag, "true or false"),
    "trim_offsets": (_is_flag, "true or false"),
    "split_special_tokens": (_is_flag, "true or false"),
    "model_max_length": (_is_length, "a whole number of tokens, at least 1"),
    "max_len": (_is_length, "a whole number of tokens, at least 1"),
    "padding_side": (lambda v: v in ("right", "left"), "'right' or 'left'"),
    "truncation_side": (lambda v: v in ("right", "left"), "'right' or 'left'"),
    # transformers documents an Iterable (its BasicTokenizer makes a set of it): a list, tuple or set
    "never_split": (
        lambda v: v is None or _is_str_list(v) or (isinstance(v, (set, frozenset)) and _is_str_list(list(v))),
        "a list of strings (or a tuple or set)",
    ),
    "model_input_names": (lambda v: v is None or (_is_str_list(v) and len(v) > 0), "a list of input names"),
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
            elif key in SPECIAL_TOKENS_ATTRIBUTES and isinstance(value, Mapping):
                # with its flags, as transformers 4 reads it (RoBERTa's slow files: <mask> with its lstrip)
                settings[key] = dict(value)
            else:
                settings[key] = _token_content(value)
    extra = settings.get("extra_special_tokens")  # transformers 5's name for additional_special_tokens
    if isinstance(extra, list) and "additional_special_tokens" not in settings:
        _check_settings({"additional_special_tokens": extra}, config_file)
        settings["additional_special_tokens"] = [_token_content(v) for v in extra]
    for key in _CONFIG_KEYS_IGNORED:
        settings.pop(key, None)
    settings.update(overrides)
    return settings


# --------------------------------------------------------------------------------------------------------------
# the backend and the constructor arguments of a stored tokenizer
# --------------------------------------------------------------------------------------------------------------


def _load_backend(
    tokenizer_object: Tokenizer | None, tokenizer_file: str | None, build: Callable[[], Tokenizer]
) -> Tokenizer:
    """The backend from the first source given: a Tokenizer, a tokenizer.json, else ``build()`` (the family's
    pipeline from its vocabulary files).

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
        backend = build()
    backend.no_padding()
    backend.no_truncation()
    return backend


def _read_pretrained(
    path: str, kwargs: dict[str, Any], vocab_files_names: Mapping[str, str], family: str
) -> tuple[dict[str, str | None], dict[str, Any]]:
    """The files and settings of the tokenizer stored at ``path`` (a folder or hub id): ``(files, settings)``,
    both constructor arguments of the family's class.

    ``files``: ``tokenizer_file`` and the family's vocabulary files (``vocab_files_names``: argument → file
    name), each given in ``kwargs`` or found (None where absent; ``OSError`` when none is). ``settings``: those of
    tokenizer_config.json and special_tokens_map.json, overridden by what is left of ``kwargs`` (the hub options
    and transformers' arguments that mean nothing here are removed from it).
    """
    options = _pop_hub_options(kwargs)
    arguments = ["tokenizer_file", *(a for a in vocab_files_names if a != "tokenizer_file")]
    files = {
        arg: kwargs.pop(arg, None) or _find_file(path, vocab_files_names.get(arg, TOKENIZER_FILE), options)
        for arg in arguments
    }
    if all(found is None for found in files.values()):
        where = os.path.join(path, options.subfolder) if options.subfolder else path
        names = [vocab_files_names.get(arg, TOKENIZER_FILE) for arg in arguments]
        if os.path.isdir(path):
            raise OSError(f"{where} has neither {' nor '.join(names)}: it is not a {family} tokenizer folder")
        raise OSError(
            f"could not find {' or '.join(names)} for {where!r}: pass a local folder that holds them, "
            f"or a hub model id of a {family} tokenizer (the hub may be unreachable)"
        )
    settings = _read_settings(path, options, kwargs)
    for arg in arguments:
        settings.pop(arg, None)
    if files["tokenizer_file"] is None and settings.get("added_tokens_decoder") is None:
        added = _legacy_added_tokens(path, options, settings)
        if added:
            settings["added_tokens_decoder"] = added
    settings.setdefault("name_or_path", path)
    return files, settings


def _legacy_added_tokens(path: str, options: hub.HubOptions, settings: Mapping[str, Any]) -> dict[int, dict]:
    """``added_tokens_decoder`` of an added_tokens.json (``{token: id}``), as transformers 4 reads a folder
    without tokenizer.json whose tokenizer_config.json lists no added tokens: special when a special token
    of the settings, else normal (and normalized: ``as_added_token``'s defaults). Empty when there is no such file."""
    found = _find_file(path, ADDED_TOKENS_FILE, options)
    if found is None:
        return {}
    encoder = _read_json_object(found)
    if not all(isinstance(k, str) and _is_kind_int(v) for k, v in encoder.items()):
        raise ValueError(f"{found} should map each added token to its id (an object of integers)")
    specials = {
        _token_content(settings.get(a)) for a in SPECIAL_TOKENS_ATTRIBUTES if a != "additional_special_tokens"
    }
    specials.update(_token_content(t) for t in settings.get("additional_special_tokens") or ())
    return {index: {"content": token, "special": token in specials} for token, index in encoder.items()}


def _is_kind_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_jsonable(value: Any) -> bool:
    try:
        json.dumps(value)
        return True
    except (TypeError, ValueError):
        return False
