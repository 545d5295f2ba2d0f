"""BERT's tokenizer: the WordPiece pipeline, ``BertTokenizer`` (= ``BertTokenizerFast``) and the methods the BERT
documentation page lists (``build_inputs_with_special_tokens``, ``get_special_tokens_mask``,
``create_token_type_ids_from_sequences``, ``save_vocabulary``) with their transformers 4 semantics.

``BertTokenizer`` loads ``tokenizer.json`` when a model folder has one, or builds the WordPiece pipeline from
``vocab.txt`` (BertNormalizer + BertPreTokenizer + WordPiece + ``[CLS] A [SEP] B [SEP]`` template + WordPiece
decoder) exactly as transformers converts a slow BERT tokenizer. Loading files is ``files.py``'s job, special
tokens ``special_tokens.py``'s, the call / pad / truncate path ``call.py``'s.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import re
import threading
import unicodedata
from collections.abc import Mapping, Sequence
from typing import Any

from tokenizers import AddedToken, Regex, Tokenizer, decoders, normalizers, pre_tokenizers, processors
from tokenizers.models import WordPiece

from ..output_files import open_output, write_files_into
from .base import TokenizerBase
from .files import (
    _SETTINGS,
    _UNSET,
    TOKENIZER_FILE,
    VOCAB_FILE,
    _check_settings,
    _check_unk_token,
    _load_backend,
    _token_content,
    load_vocab,
)
from .special_tokens import _add_config_tokens, _add_special_tokens, as_added_token

logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------------------------
# the WordPiece pipeline
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


def _wordpiece_from_vocab(
    vocab_file: str | None, vocab: Mapping[str, int] | str | os.PathLike | None, unk_token: str
) -> Tokenizer:
    """The WordPiece pipeline of a vocab.txt (``vocab_file``, or ``vocab`` as a path) or a ``{token: id}`` dict."""
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
    return backend


def _apply_normalizer_options(
    backend: Tokenizer, do_lower_case: Any, strip_accents: Any, tokenize_chinese_chars: Any
) -> tuple[bool, bool | None, bool]:
    """Set the BertNormalizer of ``backend`` from the arguments, those left unset to transformers' defaults
    (``do_lower_case=True``, ``strip_accents=None``, ``tokenize_chinese_chars=True``), as transformers'
    ``BertTokenizerFast`` (4.57 and 5) rebuilds a ``tokenizer.json``'s normalizer that differs: a cased
    ``tokenizer.json`` whose tokenizer_config.json does not set ``do_lower_case`` is lower-cased there too.

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
        "lowercase": bool(True if do_lower_case is _UNSET else do_lower_case),
        "strip_accents": None if strip_accents is _UNSET else strip_accents,
        "handle_chinese_chars": bool(True if tokenize_chinese_chars is _UNSET else tokenize_chinese_chars),
    }
    if any(state.get(k) != v for k, v in wanted.items()):
        backend.normalizer = normalizers.BertNormalizer(clean_text=state.get("clean_text", True), **wanted)
    return wanted["lowercase"], wanted["strip_accents"], wanted["handle_chinese_chars"]


# never_split, as transformers 4's slow BasicTokenizer reads it: the text is split on whitespace, and a
# whitespace-separated word is kept whole when it is a never_split entry as written, or once lower-cased (and
# its accents stripped); any other word is split on punctuation. In the tokenizers pipeline: the pre-tokenizer
# splits on whitespace, then keeps a word that is one of the entries whole and isolates punctuation elsewhere
# (BertPreTokenizer's split otherwise). The BertNormalizer runs in two steps: the clean-up (control characters
# such as a zero-width space dropped, whitespace as spaces, CJK characters set apart), as the slow tokenizer
# cleans the text before it splits it, then the lower-casing and accent stripping. An entry that the second
# changes ("[XX]" lower-cased) is found in the cleaned text as a whole word; each of its characters that it
# changes is swapped for a placeholder (a cuneiform sign: no case, no accent, not CJK) before it and put back
# after it, one character for one so that the offsets stay those of the text.
# An entry that is not in the vocabulary is kept whole too, and the slow tokenizer looks the whole word up:
# [UNK]. Here its first character, once the word is normalized, becomes a sign that begins no vocabulary entry
# (one of _UNKNOWN_SIGNS, a sign for each entry), so that WordPiece finds no piece. The slow tokenizer also keeps whole any piece of a word
# split on punctuation that is an entry ("(qzx)" gives "(", "qzx", ")"): WordPiece gives an entry of the
# vocabulary whole anyway, and an entry without punctuation that is not in it is [UNK] there too (found beside
# punctuation as well as whitespace).
# The slow tokenizer composes the text (NFC) before it looks for the entries: an entry that is not composed is
# never found, and is left out here. A spelling of an entry written decomposed (or partly: "Zu" + U+0308 +
# "rich" for "Zürich") is its entry once composed, found where the entry would be, and is composed there, after
# the clean-up, into the entry as written (the rest of the text is not composed: the fast tokenizer composes
# nothing). The spellings are those built from the entry's decomposition (its marks in any order that composes
# back to it, parts of it composed); a character that composition replaces by another one (the Angstrom sign
# U+212B for U+00C5) is not looked for.
_PLACEHOLDERS = (0x12000, 0x122FF)  # cuneiform signs
_UNKNOWN_SIGNS = (0x12300, 0x12399)  # the other cuneiform signs
#: the decomposition of a piece of an entry longer than this is looked for as itself and fully decomposed only
_MAX_SPELLING_CHARS = 4


def _char_class(ranges: Sequence[tuple[int, int]]) -> str:
    return "".join(f"\\x{{{a:X}}}" if a == b else f"\\x{{{a:X}}}-\\x{{{b:X}}}" for a, b in ranges)


@functools.lru_cache(maxsize=1)
def _punctuation_class() -> str:
    """The characters BertPreTokenizer isolates as punctuation, as a regex character class: ASCII punctuation
    and the characters of Unicode's P* categories as the installed tokenizers knows them, found by asking it
    (its tables are older than Python's: a few of them are symbols or marks for Python, so those are asked too)."""
    candidates = [
        chr(c)
        for c in range(0x110000)
        if not 0xD800 <= c < 0xE000 and unicodedata.category(chr(c))[0] in "PSM"
    ]
    pieces = pre_tokenizers.BertPreTokenizer().pre_tokenize_str("".join(f"a{c}a " for c in candidates))
    codes = sorted({ord(piece) for piece, (start, end) in pieces if end - start == 1 and piece != "a"})
    ranges: list[tuple[int, int]] = []
    for code in codes:
        if ranges and ranges[-1][1] == code - 1:
            ranges[-1] = (ranges[-1][0], code)
        else:
            ranges.append((code, code))
    return f"[{_char_class(ranges)}]"


def _unwrap_never_split(backend: Tokenizer) -> None:
    """The plain BertNormalizer / BertPreTokenizer of a backend that ``_add_never_split`` wrapped (a saved
    tokenizer.json): never_split is a setting (tokenizer_config.json), applied afresh at construction."""
    state = json.loads(backend.normalizer.__getstate__()) if backend.normalizer is not None else {}
    steps = state.get("normalizers", []) if state.get("type") == "Sequence" else []
    inner = [n for n in steps if n.get("type") == "BertNormalizer"]
    if len(inner) == 2:  # the text cleaned, then lower-cased / accents stripped: one BertNormalizer
        cleaning, casing = ("clean_text", "handle_chinese_chars"), ("strip_accents", "lowercase")
        inner = [{**{k: inner[0].get(k) for k in cleaning}, **{k: inner[1].get(k) for k in casing}}]
    low, high = _PLACEHOLDERS[0], _UNKNOWN_SIGNS[1]
    ours = [
        n
        for n in steps
        if n.get("type") == "Replace"
        and any(low <= ord(c) <= high for c in n.get("content", "") + str(n.get("pattern", "")))
    ]
    if (
        len(inner) == 1
        and ours
        and len(ours) == len(steps) - len([n for n in steps if n.get("type") == "BertNormalizer"])
    ):
        flags = ("clean_text", "handle_chinese_chars", "strip_accents", "lowercase")
        backend.normalizer = normalizers.BertNormalizer(**{k: inner[0][k] for k in flags if k in inner[0]})
    state = json.loads(backend.pre_tokenizer.__getstate__()) if backend.pre_tokenizer is not None else {}
    steps = state.get("pretokenizers", []) if state.get("type") == "Sequence" else []
    if (
        len(steps) == 2
        and steps[0].get("type") == "WhitespaceSplit"
        and steps[1].get("type") == "Split"
        and str(steps[1].get("pattern", {}).get("Regex", "")).endswith(")$|" + _punctuation_class())
    ):
        backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()


def _protected_normalizer(normalizer: Any, entries: list[str]) -> list[Any]:
    """``normalizer`` with the steps before and after it (a Sequence's list) that leave each of ``entries`` as
    written where it is a whole word of the text (between whitespace or the ends)."""
    gap = "\\s"
    before, after = [], []
    placeholder = _PLACEHOLDERS[0]
    for token in entries:
        protected = list(token)  # the entry as it stands after the swaps so far
        for k, char in enumerate(token):
            if normalizer.normalize_str(char) == char:
                continue
            if placeholder > _PLACEHOLDERS[1]:
                logger.warning(
                    f"never_split: too many characters to keep as written; {token!r} is lower-cased"
                )
                return [normalizer]
            sign = chr(placeholder)
            placeholder += 1
            prefix, suffix = re.escape("".join(protected[:k])), re.escape(token[k + 1 :])
            look_behind = f"(?<![^{gap}]{prefix})" + (f"(?<={prefix})" if prefix else "")
            before.append(
                normalizers.Replace(Regex(f"{look_behind}{re.escape(char)}(?={suffix}(?![^{gap}]))"), sign)
            )
            protected[k] = sign
        for k, char in enumerate(token):
            if protected[k] != char:  # back, where the word stands as the normalizer left it
                prefix, suffix = re.escape(token[:k]), re.escape("".join(protected[k + 1 :]))
                look_behind = f"(?<={prefix})" if prefix else ""
                after.append(normalizers.Replace(Regex(f"{look_behind}{protected[k]}(?={suffix})"), char))
    return [*before, normalizer, *after]


def _spellings(piece: str) -> list[str]:
    """The spellings of ``piece`` (a character of an entry and the marks after it) that compose (NFC) to it:
    each order of its decomposition's characters, with runs of them composed into one character where they
    compose to one; longest first."""
    import itertools

    decomposed = unicodedata.normalize("NFD", piece)
    found = {piece, decomposed}
    if len(decomposed) <= _MAX_SPELLING_CHARS:
        for order in set(itertools.permutations(decomposed)):
            for cuts in itertools.product((False, True), repeat=len(order) - 1):
                parts, start = [], 0
                for i, cut in enumerate((*cuts, True)):
                    if cut:
                        parts.append("".join(order[start : i + 1]))
                        start = i + 1
                composed = [unicodedata.normalize("NFC", part) for part in parts]
                if all(len(c) == 1 for c in composed):
                    found.add("".join(composed))
    return sorted((x for x in found if unicodedata.normalize("NFC", x) == piece), key=lambda x: (-len(x), x))


def _composing_steps(token: str, gap: str) -> list[Any]:
    """The normalizer steps that compose a spelling of ``token`` (composed, as written) that is not composed,
    where it is a whole word between ``gap`` characters or the ends, into ``token``: a step a piece of it
    (a character and the marks after it) that has other spellings, from the first, each one composing that
    piece alone so that the offsets of the word stay those of the text; none where it has no other spelling.
    Each pattern ends with a placeholder sign where it matches nothing (the word ends before it), which marks
    the step as never_split's (:func:`_unwrap_never_split`)."""
    pieces: list[str] = []
    for char in token:
        if pieces and unicodedata.combining(char):
            pieces[-1] += char
        else:
            pieces.append(char)
    spellings = [_spellings(piece) for piece in pieces]
    mark = chr(_PLACEHOLDERS[0])
    steps = []
    for k, piece in enumerate(pieces):
        others = [x for x in spellings[k] if x != piece]
        if not others:
            continue
        prefix = re.escape("".join(pieces[:k]))  # composed by the steps before
        look_behind = f"(?<![^{gap}]{prefix})" + (f"(?<={prefix})" if prefix else "")
        rest = "".join("(?:" + "|".join(re.escape(x) for x in s) + ")" for s in spellings[k + 1 :])
        alternatives = "|".join(re.escape(x) for x in others)
        pattern = f"{look_behind}(?:{alternatives})(?={rest}(?![^{gap}])(?!{mark}))"
        steps.append(normalizers.Replace(Regex(pattern), piece))
    return steps


def _unknown_word_swap(token: str, sign: str, gap: str) -> Any:
    """The normalizer step that swaps the first character of ``token`` (as the normalizer leaves it, a whole word
    between ``gap`` characters or the ends) for ``sign``."""
    pattern = f"(?<![^{gap}]){re.escape(token[0])}(?={re.escape(token[1:])}(?![^{gap}]))"
    return normalizers.Replace(Regex(pattern), sign)


def _add_never_split(backend: Tokenizer, never_split: list[str] | None, specials: list[str]) -> None:
    """``never_split`` entries are kept whole where transformers 4's slow tokenizer keeps them: as a whole
    whitespace-separated word (see above), never inside a word or beside punctuation; there, an entry of the
    vocabulary is its id and any other is the unk token's, as the slow tokenizer looks the word up."""
    if not never_split:
        return
    entries = [t for t in dict.fromkeys(never_split) if t and t not in specials]
    if not entries:
        return
    norm_state = json.loads(backend.normalizer.__getstate__()) if backend.normalizer is not None else {}
    pre_state = json.loads(backend.pre_tokenizer.__getstate__()) if backend.pre_tokenizer is not None else {}
    if norm_state.get("type") != "BertNormalizer" or pre_state.get("type") != "BertPreTokenizer":
        # a tokenizer.json with a pipeline of its own: the entries are matched whole in the raw text, as whole
        # words (not inside a word; beside punctuation too, unlike the slow tokenizer)
        skipped = [t for t in entries if backend.token_to_id(t) is None]
        if skipped:
            logger.warning(f"never_split tokens not in the vocabulary are split as usual: {skipped}")
        logger.info(
            f"never_split on a normalizer {norm_state.get('type')} / pre-tokenizer {pre_state.get('type')} "
            "(not BERT's): its entries are matched as whole words of the raw text"
        )
        backend.add_tokens(
            [AddedToken(t, normalized=False, single_word=True) for t in entries if t not in skipped]
        )
        return
    vocab = backend.get_vocab()
    signs = [chr(c) for c in range(_UNKNOWN_SIGNS[0], _UNKNOWN_SIGNS[1] + 1)]
    if not {t.removeprefix("##")[:1] for t in vocab}.isdisjoint(signs):
        signs = []  # the vocabulary has pieces that begin with them
    skipped = [t for t in entries if t not in vocab][len(signs) :]
    if skipped:
        logger.warning(f"never_split tokens not in the vocabulary are split as usual: {skipped}")
        entries = [t for t in entries if t not in skipped]
    # the BertNormalizer in two: the text cleaned (control characters dropped, whitespace as spaces, CJK
    # characters set apart), where the entries are looked for, then lower-cased / accents stripped
    cleaner = normalizers.BertNormalizer(
        clean_text=norm_state.get("clean_text", True),
        handle_chinese_chars=norm_state.get("handle_chinese_chars", True),
        strip_accents=False,
        lowercase=False,
    )
    caser = normalizers.BertNormalizer(
        clean_text=False,
        handle_chinese_chars=False,
        strip_accents=norm_state.get("strip_accents"),
        lowercase=norm_state.get("lowercase", True),
    )
    found, kept, changed, unknown = [], [], [], {}
    for token in entries:
        normalized = backend.normalizer.normalize_str(token)
        if not normalized or any(c.isspace() for c in normalized):
            continue  # never one whitespace-separated word (spaces, or CJK characters set apart): split as usual
        if cleaner.normalize_str(token) != token or unicodedata.normalize("NFC", token) != token:
            continue  # never a word of the cleaned, composed text
        if token not in vocab:
            unknown[token] = signs[len(unknown)]
        found.append(token)
        kept.append(unknown[token] + token[1:] if token in unknown else token)
        if normalized != token:
            changed.append(token)
    if not kept:
        return
    # where the slow tokenizer finds an entry: a whole word, or a piece between punctuation for an entry
    # without punctuation (its _tokenize keeps such a piece whole)
    punctuation = _punctuation_class()[1:-1]
    pieces = pre_tokenizers.BertPreTokenizer()
    gap = {t: "\\s" + (punctuation if len(pieces.pre_tokenize_str(t)) == 1 else "") for t in found}
    composing = [step for t in found for step in _composing_steps(t, gap[t])]
    if changed or unknown or composing:
        steps = [cleaner, *composing, *(_protected_normalizer(caser, changed) if changed else [caser])]
        if norm_state.get("lowercase", True) and norm_state.get("strip_accents") is False:
            steps += composing  # a word found once lower-cased keeps its marks: composed there too
        steps += [_unknown_word_swap(t, sign, gap[t]) for t, sign in unknown.items()]
        backend.normalizer = normalizers.Sequence(steps)
    words = "|".join(re.escape(t) for t in sorted(kept, key=len, reverse=True))
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.WhitespaceSplit(),
            pre_tokenizers.Split(Regex(f"^(?:{words})$|{_punctuation_class()}"), "isolated"),
        ]
    )


def _flagged_special(value: Any) -> AddedToken | None:
    """A special token given with flags (an ``AddedToken`` or ``{"content": ..., "lstrip": ...}``) as the special
    ``AddedToken`` it describes; None for a plain string."""
    if isinstance(value, AddedToken):
        flags = ("content", "lstrip", "rstrip", "single_word", "normalized")
        value = {flag: getattr(value, flag) for flag in flags}
    return as_added_token({**value, "special": True}) if isinstance(value, Mapping) else None


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


# --------------------------------------------------------------------------------------------------------------
# the tokenizer
# --------------------------------------------------------------------------------------------------------------


class BertTokenizer(TokenizerBase):
    """BERT WordPiece tokenizer with the API of transformers' ``BertTokenizerFast``.

    Construct it from a model folder or hub id with :meth:`from_pretrained`, or directly from a ``vocab.txt``
    (``vocab_file=``), a ``tokenizer.json`` (``tokenizer_file=``), a ``{token: id}`` dict (``vocab=``) or a
    ``tokenizers.Tokenizer`` (``tokenizer_object=``).

    ``do_lower_case``, ``strip_accents`` and ``tokenize_chinese_chars`` set the BertNormalizer; left out with
    a ``tokenizer.json``, the file's own normalizer settings are kept. ``never_split`` tokens are kept whole
    where transformers 4's slow tokenizer keeps them (a whole whitespace-separated word, as written or once
    lower-cased), instead of being split on punctuation, and are looked up whole: a token not in the vocabulary
    is the unk token, as there; with ``do_basic_tokenize=False`` they are not used, as there.
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
        clean_up_tokenization_spaces: bool | None = _UNSET,
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

        backend = _load_backend(
            tokenizer_object, tokenizer_file, lambda: _wordpiece_from_vocab(vocab_file, vocab, self.unk_token)
        )
        _unwrap_never_split(backend)  # a saved never_split pipeline: rebuilt below from the never_split given
        self.do_lower_case, self.strip_accents, self.tokenize_chinese_chars = _apply_normalizer_options(
            backend, do_lower_case, strip_accents, tokenize_chinese_chars
        )
        self.do_basic_tokenize = do_basic_tokenize
        if (
            do_basic_tokenize is False
        ):  # transformers 4's BertTokenizer: WordPiece on whitespace-split text as is
            backend.normalizer = None
            backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
        # a set in a fixed order: tokenizer_config.json and the pipeline the same on every run
        self.never_split = (
            (sorted(never_split) if isinstance(never_split, (set, frozenset)) else list(never_split))
            if never_split
            else None
        )
        specials = [t for t in self._special_token_values() if t]
        # a special token given with its flags (an AddedToken, or an object of special_tokens_map.json or
        # tokenizer_config.json) is added with them, as transformers reads it: [MASK] with its lstrip
        given = (unk_token, sep_token, pad_token, cls_token, mask_token, bos_token, eos_token)
        flagged = {t.content: t for t in map(_flagged_special, given) if t is not None}
        _add_config_tokens(backend, added_tokens_decoder)  # first: each at the id the files give it
        self._add_specials(backend, [flagged.get(t, t) for t in specials])
        # transformers 4: never_split is the basic tokenizer's, unused without it
        if do_basic_tokenize is not False:
            _add_never_split(backend, self.never_split, specials)
        self._tokenizer = backend
        self._ensure_post_processor()

        if clean_up_tokenization_spaces is _UNSET:
            # Unset (not an argument, not in tokenizer_config.json): what transformers' fast tokenizer (the one
            # AutoTokenizer loads) does. transformers 4.57: BertTokenizerFast converts the slow BertTokenizer
            # when there is no tokenizer.json and takes its init kwargs, whose default is True; from a
            # tokenizer.json (or a tokenizers object) it keeps the base default, False. transformers 5.25: False
            # on every path. fastbert follows 4.57: True only when the WordPiece pipeline is built from a
            # vocab.txt; a {token: id} dict (a transformers 5 form) gets 5's False. Set in the config or as an
            # argument, the value is used as given (both versions), and save_pretrained writes the value in
            # force, as 4.57 does (5 writes it only when set), so the saved folder decodes the same everywhere.
            clean_up_tokenization_spaces = (tokenizer_object is None and tokenizer_file is None) and (
                vocab_file is not None or isinstance(vocab, (str, os.PathLike))
            )
        self._init_settings(
            model_max_length=model_max_length,
            padding_side=padding_side,
            truncation_side=truncation_side,
            clean_up_tokenization_spaces=clean_up_tokenization_spaces,
            init_kwargs={
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
            },
            kwargs=kwargs,
        )

    # ---------------------------------------------------------------------------------------------------------
    # loading and saving
    # ---------------------------------------------------------------------------------------------------------
    def save_vocabulary(self, save_directory: str, filename_prefix: str | None = None) -> tuple[str]:
        """Write ``vocab.txt`` (``{prefix}-vocab.txt``) to ``save_directory``, or to the file path it names (as
        transformers 4's ``BertTokenizer``); returns its path in a tuple."""
        model = self._tokenizer.model
        if not isinstance(model, WordPiece):
            raise ValueError("save_vocabulary needs a WordPiece model")
        prefix = filename_prefix + "-" if filename_prefix else ""
        is_folder = os.path.isdir(save_directory)
        folder = save_directory if is_folder else os.path.dirname(os.path.abspath(save_directory))
        if not os.path.isdir(folder):
            raise OSError(f"Vocabulary path ({save_directory}) should be a directory or a file in one")
        path = os.path.join(folder, prefix + (VOCAB_FILE if is_folder else os.path.basename(save_directory)))
        vocab = sorted(self._tokenizer.get_vocab(with_added_tokens=False).items(), key=lambda kv: kv[1])
        if any(b[1] != a[1] + 1 for a, b in zip(vocab, vocab[1:])):
            # as transformers 4's BertTokenizer (into a folder or a file): the file's line numbers are not the ids
            logger.warning(f"Saving vocabulary to {path}: vocabulary indices are not consecutive")
        if is_folder:
            # into a folder inside it, renamed into it once complete: an interrupted save leaves no truncated file
            return write_files_into(save_directory, lambda staging: model.save(staging, filename_prefix))
        with open_output(path, "w") as f:
            f.write("".join(f"{token}\n" for token, _ in vocab))
        return (path,)

    def _config_for_save(self) -> dict[str, Any]:
        config = super()._config_for_save()
        config.update(
            {
                "do_lower_case": self.do_lower_case,
                "strip_accents": self.strip_accents,
                "tokenize_chinese_chars": self.tokenize_chinese_chars,
            }
        )
        return config

    # ---------------------------------------------------------------------------------------------------------
    # special tokens in sequences: the BERT page's methods
    # ---------------------------------------------------------------------------------------------------------
    # the four methods of BERT's documentation: transformers 4 (5 keeps them in tokenization_bert_legacy only)
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

    def _update_post_processor(self) -> None:
        _set_template(self._tokenizer, self.cls_token, self.cls_token_id, self.sep_token, self.sep_token_id)

    def _ensure_post_processor(self) -> None:
        """At construction: the ``[CLS] A [SEP] B [SEP]`` template unless the backend brought the same one."""
        _ensure_template(self._tokenizer, self.cls_token, self.sep_token)

    def _add_specials(self, backend: Tokenizer, specials: list[str | AddedToken]) -> None:
        """At construction: the special tokens the backend lacks, matched whole in the raw text."""
        _add_special_tokens(backend, specials)

    def _repr_extra(self) -> str:
        return f", do_lower_case={self.do_lower_case}"


BertTokenizerFast = BertTokenizer
