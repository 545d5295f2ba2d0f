"""RoBERTa-style tokenizers: ``RobertaTokenizer`` (byte-level BPE), ``XLMRobertaTokenizer`` and
``CamembertTokenizer`` (SentencePiece Unigram), with ``<s> A </s>`` / ``<s> A </s></s> B </s>`` sequences, no token
type ids by default and the sequence methods transformers 4 documents for them.

From a folder, the backend is built as transformers 5 builds it: the vocabulary (and merges) of ``tokenizer.json``
inside the family's own pipeline (byte-level pre-tokenizer and decoder for RoBERTa; whitespace split + Metaspace
and the file's SentencePiece ``Precompiled`` normalizer for XLM-R and CamemBERT; the family's post-processor), so
``add_prefix_space`` / ``trim_offsets`` of tokenizer_config.json decide, not what the file happens to hold. The added
tokens are tokenizer_config.json's ``added_tokens_decoder`` (else tokenizer.json's ``added_tokens``), so ``<mask>``
keeps its ``lstrip``. A RoBERTa folder with only ``vocab.json`` + ``merges.txt`` loads too, and so does an XLM-R or
CamemBERT folder with only its SentencePiece model (``sentencepiece.bpe.model``, read by ``sentencepiece_model``
without sentencepiece or protobuf, converted as transformers converts it); a SentencePiece model that is not a
Unigram raises ``ValueError`` saying how to convert the folder once.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from tokenizers import AddedToken, Tokenizer, decoders, pre_tokenizers, processors
from tokenizers.models import BPE

from ..output_files import write_files_into
from .base import TokenizerBase
from .files import (
    _SETTINGS,
    TOKENIZER_FILE,
    _check_settings,
    _parse_json_object,
    _read_text,
    _token_content,
)
from .sentencepiece_model import CONTROL, MODEL_TYPE_NAMES, UNIGRAM, USER_DEFINED, read_sentencepiece_model
from .special_tokens import as_added_token

VOCAB_JSON_FILE = "vocab.json"
MERGES_FILE = "merges.txt"
SENTENCEPIECE_FILE = "sentencepiece.bpe.model"
SPIECE_UNDERLINE = "\u2581"


def convert_hint(what: str) -> str:
    """How to turn a folder fastbert cannot read (``what`` it holds) into one with a tokenizer.json."""
    return (
        f"{what}, which fastbert does not read. Convert the folder once where transformers can: `pip install "
        f"transformers sentencepiece protobuf`, then `transformers.AutoTokenizer.from_pretrained(folder)"
        f".save_pretrained(folder)` writes its tokenizer.json, which fastbert reads"
    )


# --------------------------------------------------------------------------------------------------------------
# the sequence methods of the RoBERTa page (also MPNet's): <s> A </s></s> B </s>, token types all 0
# --------------------------------------------------------------------------------------------------------------


class RobertaSequencesMixin:
    """``build_inputs_with_special_tokens``, ``get_special_tokens_mask`` and
    ``create_token_type_ids_from_sequences`` of transformers 4's RoBERTa, XLM-RoBERTa, CamemBERT and MPNet."""

    cls_token_id: int | None
    sep_token_id: int | None
    all_special_ids: list[int]

    def build_inputs_with_special_tokens(
        self, token_ids_0: list[int], token_ids_1: list[int] | None = None
    ) -> list[int]:
        """``<s> A </s>`` or ``<s> A </s></s> B </s>``."""
        cls, sep = [self.cls_token_id], [self.sep_token_id]
        if token_ids_1 is None:
            return cls + list(token_ids_0) + sep
        return cls + list(token_ids_0) + sep + sep + list(token_ids_1) + sep

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
        if token_ids_1 is None:
            return [1] + [0] * len(token_ids_0) + [1]
        return [1] + [0] * len(token_ids_0) + [1, 1] + [0] * len(token_ids_1) + [1]

    def create_token_type_ids_from_sequences(
        self, token_ids_0: list[int], token_ids_1: list[int] | None = None
    ) -> list[int]:
        """All zeros: these models have no token types (one per position of the built sequence)."""
        return [0] * len(self.build_inputs_with_special_tokens(token_ids_0, token_ids_1))


# --------------------------------------------------------------------------------------------------------------
# building the backend
# --------------------------------------------------------------------------------------------------------------


def _model_type(model: Mapping[str, Any]) -> str | None:
    """The model type of a tokenizer.json ``model`` section (old files have no ``type``)."""
    if model.get("type"):
        return model["type"]
    if "merges" in model:
        return "BPE"
    vocab = model.get("vocab")
    if isinstance(vocab, list):
        return "Unigram"
    if "continuing_subword_prefix" in model or "max_input_chars_per_word" in model:
        return "WordPiece"
    return None


def _precompiled_normalizer(normalizer: Any) -> dict | None:
    """The SentencePiece ``Precompiled`` normalizer of a tokenizer.json (alone or inside a Sequence)."""
    if not isinstance(normalizer, Mapping):
        return None
    if normalizer.get("type") == "Precompiled" and normalizer.get("precompiled_charsmap"):
        return dict(normalizer)
    if normalizer.get("type") == "Sequence":
        for item in normalizer.get("normalizers") or ():
            found = _precompiled_normalizer(item)
            if found is not None:
                return found
    return None


def _backend_from_sections(model: dict, normalizer: dict | None, source: str) -> Tokenizer:
    """A ``tokenizers.Tokenizer`` holding only ``model`` (and ``normalizer``) sections of a tokenizer.json."""
    data = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [],
        "normalizer": normalizer,
        "pre_tokenizer": None,
        "post_processor": None,
        "decoder": None,
        "model": model,
    }
    try:
        return Tokenizer.from_str(json.dumps(data))
    except Exception as e:  # the tokenizers library raises a bare Exception for every kind of bad file
        raise ValueError(f"{source}: its model cannot be read by the tokenizers library ({e})") from None


def _added_tokens_of(data: Mapping[str, Any]) -> dict[int, dict]:
    """``{id: AddedToken fields}`` of a tokenizer.json's ``added_tokens``."""
    out: dict[int, dict] = {}
    for entry in data.get("added_tokens") or ():
        if isinstance(entry, Mapping) and isinstance(entry.get("id"), int) and entry.get("content"):
            out[entry["id"]] = {k: v for k, v in entry.items() if k != "id"}
    return out


# --------------------------------------------------------------------------------------------------------------
# the tokenizers
# --------------------------------------------------------------------------------------------------------------


class _RobertaStyleTokenizer(RobertaSequencesMixin, TokenizerBase):
    """The shared constructor of the RoBERTa-style tokenizers; a family says its model (``_model``: "BPE" or
    "Unigram"), its pipeline (``_set_pipeline``), its post-processor and its defaults."""

    model_input_names = ["input_ids", "attention_mask"]
    _model = "BPE"
    # a <mask> the files do not describe takes the space before it (lstrip): transformers 5 does it for CamemBERT
    # and MPNet only (4 did it for RoBERTa and XLM-R too); hub folders describe theirs, with lstrip
    _mask_lstrip = False

    def __init__(
        self,
        vocab_file: str | None = None,
        tokenizer_file: str | None = None,
        *,
        merges_file: str | None = None,
        bos_token: str = "<s>",
        eos_token: str = "</s>",
        sep_token: str = "</s>",
        cls_token: str = "<s>",
        unk_token: str = "<unk>",
        pad_token: str = "<pad>",
        mask_token: str = "<mask>",
        add_prefix_space: bool = False,
        trim_offsets: bool = True,
        vocab: Mapping[str, int] | Sequence | None = None,
        merges: Sequence | None = None,
        tokenizer_object: Tokenizer | None = None,
        model_max_length: int | None = None,
        padding_side: str = "right",
        truncation_side: str = "right",
        # transformers 4.57 and 5.25 (fast tokenizers, from tokenizer.json or from the slow files): False unless
        # set; fastbert's True before was transformers <= 4.44's default
        clean_up_tokenization_spaces: bool = False,
        additional_special_tokens: Sequence[str] | None = None,
        name_or_path: str = "",
        added_tokens_decoder: Mapping | None = None,
        **kwargs: Any,
    ):
        self._lock = threading.RLock()
        _check_settings({name: value for name, value in locals().items() if name in _SETTINGS})
        extra = kwargs.pop("extra_special_tokens", None)  # transformers 5's name for the list
        if additional_special_tokens is None and isinstance(extra, (list, tuple)):
            additional_special_tokens = extra
        self.name_or_path = str(name_or_path or kwargs.pop("_name_or_path", "") or "")
        given = {
            "bos_token": bos_token,
            "eos_token": eos_token,
            "unk_token": unk_token,
            "sep_token": sep_token,
            "pad_token": pad_token,
            "cls_token": cls_token,
            "mask_token": mask_token,
        }
        for attr, value in given.items():
            setattr(self, attr, _token_content(value))
        self.additional_special_tokens = [_token_content(t) for t in (additional_special_tokens or [])]
        self.add_prefix_space = bool(add_prefix_space)
        self.trim_offsets = bool(trim_offsets)
        self.vocab_file = vocab_file

        file_added: dict[int, dict] = {}
        if tokenizer_object is not None:  # a ready backend: used as it is, post-processor aside
            backend = Tokenizer.from_str(tokenizer_object.to_str())
            # its added tokens keep their flags (<mask>'s lstrip): the special tokens are added over them below
            file_added = dict(backend.get_added_tokens_decoder())
        elif tokenizer_file is not None:
            backend, file_added = self._from_tokenizer_json(tokenizer_file)
        else:
            backend = self._from_vocabulary(vocab_file, merges_file, vocab, merges)
        backend.no_padding()
        backend.no_truncation()
        self._add_tokens(
            backend, added_tokens_decoder if added_tokens_decoder is not None else file_added, given
        )
        self._tokenizer = backend
        self._update_post_processor()

        self._init_settings(
            model_max_length=model_max_length,
            padding_side=padding_side,
            truncation_side=truncation_side,
            clean_up_tokenization_spaces=clean_up_tokenization_spaces,
            init_kwargs={
                **{attr: getattr(self, attr) for attr in given},
                **self._family_settings(),
            },
            kwargs=kwargs,
        )

    # ---------------------------------------------------------------------------------------------------------
    # the backend
    # ---------------------------------------------------------------------------------------------------------
    def _family_settings(self) -> dict[str, Any]:
        return {"add_prefix_space": self.add_prefix_space}

    def _set_pipeline(self, backend: Tokenizer) -> None:
        """The family's pre-tokenizer and decoder around the model (and normalizer) of ``backend``."""
        raise NotImplementedError

    def _model_section(self, model: dict) -> dict:
        """The tokenizer.json model section with the options the family's model is built with."""
        return model

    def _from_tokenizer_json(self, path: str) -> tuple[Tokenizer, dict[int, dict]]:
        """The family's pipeline around the model of a tokenizer.json, and the file's added tokens."""
        if not os.path.exists(path):
            raise OSError(f"tokenizer_file {path} does not exist")
        data = _parse_json_object(_read_text(path), path)  # empty, not JSON, not an object: says so
        model = data.get("model")
        kind = _model_type(model) if isinstance(model, Mapping) else None
        if kind != self._model:
            raise ValueError(
                f"{path} holds a {kind or 'unknown'} model, but a {self.family} tokenizer needs a {self._model} "
                f"model (is tokenizer_config.json's tokenizer_class right for this folder?)"
            )
        normalizer = _precompiled_normalizer(data.get("normalizer")) if self._model == "Unigram" else None
        backend = _backend_from_sections(self._model_section(dict(model)), normalizer, path)
        self._set_pipeline(backend)
        return backend, _added_tokens_of(data)

    def _from_vocabulary(
        self, vocab_file: str | None, merges_file: str | None, vocab: Any, merges: Any
    ) -> Tokenizer:
        raise OSError(
            f"{type(self).__name__} needs a tokenizer.json (tokenizer_file=) or a tokenizers.Tokenizer "
            f"(tokenizer_object=), or use {type(self).__name__}.from_pretrained(folder_or_hub_id)"
        )

    def _add_tokens(self, backend: Tokenizer, added: Mapping, given: Mapping[str, Any]) -> None:
        """The added tokens (by index), then the special tokens they lack, as transformers 5 adds them."""
        tokens: list[AddedToken] = []
        for _, entry in sorted(((int(i), e) for i, e in (added or {}).items()), key=lambda item: item[0]):
            token = as_added_token(entry, plain_special=True)
            if token is not None:
                tokens.append(token)
        have = {t.content for t in tokens}
        for attr, value in given.items():
            content = _token_content(value)
            if not content or content in have:
                continue
            if isinstance(value, AddedToken):
                token = value
            elif isinstance(value, Mapping):
                token = as_added_token({**value, "special": True})
            else:
                lstrip = attr == "mask_token" and self._mask_lstrip
                token = AddedToken(content, lstrip=lstrip, rstrip=False, normalized=False, special=True)
            tokens.append(token)
            have.add(content)
        for content in self.additional_special_tokens:
            if content not in have:
                tokens.append(AddedToken(content, normalized=False, special=True))
                have.add(content)
        for content in getattr(self, "_user_defined", ()):  # a SentencePiece model's user-defined pieces
            if content not in have:
                tokens.append(AddedToken(content, normalized=False, special=False))
                have.add(content)
        for token in tokens:
            if token.special:
                backend.add_special_tokens([token])
            else:
                backend.add_tokens([token])

    # ---------------------------------------------------------------------------------------------------------
    # saving
    # ---------------------------------------------------------------------------------------------------------
    def save_vocabulary(self, save_directory: str, filename_prefix: str | None = None) -> tuple[str, ...]:
        raise NotImplementedError

    def _repr_extra(self) -> str:
        return f", add_prefix_space={self.add_prefix_space}"


class RobertaTokenizer(_RobertaStyleTokenizer):
    """RoBERTa's byte-level BPE tokenizer with the API of transformers' ``RobertaTokenizerFast``.

    Construct it from a model folder or hub id with :meth:`from_pretrained` (``tokenizer.json``, or
    ``vocab.json`` + ``merges.txt``), or directly from ``vocab_file=`` + ``merges_file=``, ``tokenizer_file=``,
    ``vocab=`` (``{token: id}``) + ``merges=`` or ``tokenizer_object=``. ``add_prefix_space`` (False) treats
    the first word as any other (needed for ``is_split_into_words=True``); ``trim_offsets`` (True) leaves the
    spaces out of the offsets.
    """

    vocab_files_names = {
        "vocab_file": VOCAB_JSON_FILE,
        "merges_file": MERGES_FILE,
        "tokenizer_file": TOKENIZER_FILE,
    }
    family = "RoBERTa"
    _model = "BPE"

    def __init__(
        self,
        vocab_file: str | None = None,
        merges_file: str | None = None,
        tokenizer_file: str | None = None,
        errors: str = "replace",
        bos_token: str = "<s>",
        eos_token: str = "</s>",
        sep_token: str = "</s>",
        cls_token: str = "<s>",
        unk_token: str = "<unk>",
        pad_token: str = "<pad>",
        mask_token: str = "<mask>",
        add_prefix_space: bool = False,
        trim_offsets: bool = True,
        **kwargs: Any,
    ):
        self.errors = errors
        super().__init__(
            vocab_file,
            tokenizer_file,
            merges_file=merges_file,
            bos_token=bos_token,
            eos_token=eos_token,
            sep_token=sep_token,
            cls_token=cls_token,
            unk_token=unk_token,
            pad_token=pad_token,
            mask_token=mask_token,
            add_prefix_space=add_prefix_space,
            trim_offsets=trim_offsets,
            **kwargs,
        )

    def _family_settings(self) -> dict[str, Any]:
        return {
            "add_prefix_space": self.add_prefix_space,
            "trim_offsets": self.trim_offsets,
            "errors": self.errors,
        }

    def _check_call(self, is_split_into_words: bool) -> None:
        # transformers 4 (its documented requirement; 5 dropped the check and tokenizes the words without the
        # space that every word but the first has in running text)
        if is_split_into_words and not self.add_prefix_space:
            raise ValueError(
                f"You need to instantiate {type(self).__name__} with add_prefix_space=True to use it with "
                "pretokenized inputs (is_split_into_words=True)."
            )

    def _model_section(self, model: dict) -> dict:
        # transformers 5: BPE(vocab, merges, dropout=None, continuing_subword_prefix="", end_of_word_suffix="",
        # fuse_unk=False), no unk token (every byte is in a byte-level vocabulary)
        model.update(
            dropout=None,
            unk_token=None,
            continuing_subword_prefix="",
            end_of_word_suffix="",
            fuse_unk=False,
            byte_fallback=False,
        )
        return model

    def _set_pipeline(self, backend: Tokenizer) -> None:
        backend.normalizer = None
        backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=self.add_prefix_space)
        backend.decoder = decoders.ByteLevel()

    def _from_vocabulary(
        self, vocab_file: str | None, merges_file: str | None, vocab: Any, merges: Any
    ) -> Tokenizer:
        options = dict(dropout=None, continuing_subword_prefix="", end_of_word_suffix="", fuse_unk=False)
        if vocab is None and vocab_file is not None:
            if merges_file is None:
                raise OSError(f"{vocab_file} needs its merges.txt beside it (merges_file=) to build the BPE")
            for path in (vocab_file, merges_file):
                if not os.path.isfile(path):
                    raise OSError(f"{path} does not exist")
            try:
                vocab, merges = BPE.read_file(vocab_file, merges_file)
            except Exception as e:  # the tokenizers library raises a bare Exception for a bad file
                raise ValueError(
                    f"{vocab_file} + {merges_file} are not a vocab.json and merges.txt of a BPE ({e})"
                ) from None
        if vocab is None:
            raise OSError(
                "RobertaTokenizer needs a vocabulary: pass tokenizer_file= (tokenizer.json), vocab_file= "
                "(vocab.json) and merges_file= (merges.txt), vocab= and merges=, or use "
                "RobertaTokenizer.from_pretrained(folder_or_hub_id)"
            )
        merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in (merges or [])]
        try:
            backend = Tokenizer(BPE(vocab=dict(vocab), merges=merges, **options))
        except Exception as e:  # a bare Exception: a merge of tokens the vocabulary lacks (files that differ)
            source = f"{vocab_file} + {merges_file}" if vocab_file is not None else "vocab= and merges="
            raise ValueError(f"{source} do not make a BPE: {e}") from None
        self._set_pipeline(backend)
        return backend

    def _update_post_processor(self) -> None:
        self._tokenizer.post_processor = processors.RobertaProcessing(
            (self.sep_token, self.sep_token_id),
            (self.cls_token, self.cls_token_id),
            trim_offsets=self.trim_offsets,
            add_prefix_space=self.add_prefix_space,
        )

    def save_vocabulary(self, save_directory: str, filename_prefix: str | None = None) -> tuple[str, ...]:
        """Write ``vocab.json`` and ``merges.txt`` (``{prefix}-vocab.json``...); returns their paths."""
        if not os.path.isdir(save_directory):
            raise OSError(f"Vocabulary path ({save_directory}) should be a directory")
        model = self._tokenizer.model
        if not isinstance(model, BPE):
            raise ValueError("save_vocabulary needs a BPE model")
        # into a folder inside it, renamed into it once complete: an interrupted save leaves no truncated file
        return write_files_into(save_directory, lambda folder: model.save(folder, filename_prefix))


class XLMRobertaTokenizer(_RobertaStyleTokenizer):
    """XLM-RoBERTa's SentencePiece Unigram tokenizer with the API of transformers' ``XLMRobertaTokenizerFast``.

    Construct it from a model folder or hub id with :meth:`from_pretrained` (``tokenizer.json``, else
    ``sentencepiece.bpe.model``), or directly from ``tokenizer_file=``, ``vocab_file=`` (a SentencePiece Unigram
    model), ``vocab=`` (``[(piece, score)]``) or ``tokenizer_object=``.
    """

    vocab_files_names = {"vocab_file": SENTENCEPIECE_FILE, "tokenizer_file": TOKENIZER_FILE}
    family = "XLM-RoBERTa"
    _model = "Unigram"

    def __init__(
        self,
        vocab_file: str | None = None,
        tokenizer_file: str | None = None,
        bos_token: str = "<s>",
        eos_token: str = "</s>",
        sep_token: str = "</s>",
        cls_token: str = "<s>",
        unk_token: str = "<unk>",
        pad_token: str = "<pad>",
        mask_token: str = "<mask>",
        add_prefix_space: bool = True,
        **kwargs: Any,
    ):
        super().__init__(
            vocab_file,
            tokenizer_file,
            bos_token=bos_token,
            eos_token=eos_token,
            sep_token=sep_token,
            cls_token=cls_token,
            unk_token=unk_token,
            pad_token=pad_token,
            mask_token=mask_token,
            add_prefix_space=add_prefix_space,
            **kwargs,
        )

    def _model_section(self, model: dict) -> dict:
        # transformers 5: Unigram(vocab, unk_id, byte_fallback=False), the unk id being the unk token's
        vocab = model.get("vocab") or []
        unk = next((i for i, item in enumerate(vocab) if item and item[0] == self.unk_token), None)
        if unk is not None:
            model["unk_id"] = unk
        model["byte_fallback"] = False
        return model

    def _spm_vocab(self, pieces: list[tuple[str, float]]) -> list[tuple[str, float]]:
        """transformers' XLM-R conversion of a SentencePiece vocabulary: fairseq's four specials first (the
        model's <unk>, <s>, </s> dropped), ``<mask>`` last."""
        specials = [self.bos_token, self.pad_token, self.eos_token, self.unk_token]
        return [(t, 0.0) for t in specials] + list(pieces[3:]) + [(self.mask_token, 0.0)]

    def _from_vocabulary(
        self, vocab_file: str | None, merges_file: str | None, vocab: Any, merges: Any
    ) -> Tokenizer:
        """The Unigram of a SentencePiece model file (``vocab_file``) or of ``vocab`` (``[(piece, score)]``),
        converted as transformers converts XLM-R's and CamemBERT's."""
        charsmap = b""
        if vocab is None and vocab_file is not None:
            if not os.path.isfile(vocab_file):
                raise OSError(f"vocab_file {vocab_file} does not exist")
            spm = read_sentencepiece_model(vocab_file)
            if spm.model_type != UNIGRAM:
                kind = MODEL_TYPE_NAMES.get(spm.model_type, str(spm.model_type))
                raise ValueError(
                    convert_hint(
                        f"{vocab_file} is a SentencePiece {kind} model, not the Unigram {self.family} uses"
                    )
                )
            vocab = self._spm_vocab([(p, score) for p, score, _ in spm.pieces])
            charsmap = spm.precompiled_charsmap
            # transformers: the model's control pieces are special tokens, its user-defined pieces added tokens
            self.additional_special_tokens = [p for p, _, kind in spm.pieces if kind == CONTROL]
            self._user_defined = [p for p, _, kind in spm.pieces if kind == USER_DEFINED]
        if not (isinstance(vocab, (list, tuple)) and vocab and all(len(item) == 2 for item in vocab)):
            raise OSError(
                f"{type(self).__name__} needs a vocabulary: pass tokenizer_file= (tokenizer.json), vocab_file= "
                f"(a SentencePiece model) or vocab= (a list of (piece, score)), or use "
                f"{type(self).__name__}.from_pretrained(folder_or_hub_id)"
            )
        if not any(str(piece) == self.unk_token for piece, _ in vocab):  # else unknown text read as piece 0
            raise ValueError(
                f"{type(self).__name__}: the vocabulary has no unk_token {self.unk_token!r}, the id of the text "
                "no piece spells (transformers' Unigram raises too): add it to vocab= (fairseq's order puts it 4th)"
            )
        model = {"type": "Unigram", "unk_id": 0, "vocab": [[str(p), float(score)] for p, score in vocab]}
        normalizer = {"type": "Precompiled", "precompiled_charsmap": base64.b64encode(charsmap).decode()}
        backend = _backend_from_sections(
            self._model_section(model), normalizer if charsmap else None, vocab_file or "vocab"
        )
        self._set_pipeline(backend)
        return backend

    def _set_pipeline(self, backend: Tokenizer) -> None:
        scheme = "always" if self.add_prefix_space else "never"
        backend.pre_tokenizer = pre_tokenizers.Sequence(
            [
                pre_tokenizers.WhitespaceSplit(),
                pre_tokenizers.Metaspace(replacement=SPIECE_UNDERLINE, prepend_scheme=scheme, split=True),
            ]
        )
        backend.decoder = decoders.Metaspace(replacement=SPIECE_UNDERLINE, prepend_scheme=scheme)

    def _update_post_processor(self) -> None:
        bos, eos = self.bos_token, self.eos_token
        self._tokenizer.post_processor = processors.TemplateProcessing(
            single=[bos, "$A", eos],
            pair=[bos, "$A", eos, eos, "$B", eos],
            special_tokens=[(bos, self.bos_token_id), (eos, self.eos_token_id)],
        )

    def save_vocabulary(self, save_directory: str, filename_prefix: str | None = None) -> tuple[str, ...]:
        """Copy the SentencePiece model this tokenizer was loaded with (``{prefix}-sentencepiece.bpe.model``);
        ``ValueError`` when there is none (a tokenizer.json alone cannot give one back)."""
        if not os.path.isdir(save_directory):
            raise OSError(f"Vocabulary path ({save_directory}) should be a directory")
        if not self.can_save_slow_tokenizer:
            raise ValueError(
                "Your fast tokenizer does not have the necessary information to save the vocabulary for a slow "
                "tokenizer: it was not loaded with a SentencePiece model (tokenizer.json holds the vocabulary)."
            )
        prefix = f"{filename_prefix}-" if filename_prefix else ""
        out = os.path.join(save_directory, prefix + SENTENCEPIECE_FILE)
        if os.path.abspath(self.vocab_file) != os.path.abspath(out):
            # copied into a folder inside it, renamed into it once complete: an interrupted save leaves no
            # truncated model (nor a truncated copy over the one there was)
            write_files_into(
                save_directory,
                lambda folder: [
                    shutil.copyfile(self.vocab_file, os.path.join(folder, os.path.basename(out)))
                ],
            )
        return (out,)

    @property
    def can_save_slow_tokenizer(self) -> bool:
        return bool(self.vocab_file) and os.path.isfile(self.vocab_file)

    def _save_vocabulary_files(self, save_directory: str, filename_prefix: str | None) -> tuple[str, ...]:
        if not self.can_save_slow_tokenizer:
            return ()  # tokenizer.json is the whole tokenizer
        return self.save_vocabulary(save_directory, filename_prefix)


class CamembertTokenizer(XLMRobertaTokenizer):
    """CamemBERT's SentencePiece Unigram tokenizer with the API of transformers' ``CamembertTokenizerFast``
    (XLM-RoBERTa's, with ``<s>NOTUSED``, ``</s>NOTUSED``, ``<unk>NOTUSED`` as additional special tokens by
    default)."""

    family = "CamemBERT"
    _mask_lstrip = True

    def _spm_vocab(self, pieces: list[tuple[str, float]]) -> list[tuple[str, float]]:
        """transformers' CamemBERT conversion: five fairseq tokens first (the model's first piece dropped),
        ``<mask>`` last."""
        head = [("<s>NOTUSED", 0.0), (self.pad_token, 0.0), ("</s>NOTUSED", 0.0), (self.unk_token, 0.0)]
        return head + [("<unk>NOTUSED", -100.0)] + list(pieces[1:]) + [(self.mask_token, 0.0)]

    def __init__(
        self,
        vocab_file: str | None = None,
        tokenizer_file: str | None = None,
        bos_token: str = "<s>",
        eos_token: str = "</s>",
        sep_token: str = "</s>",
        cls_token: str = "<s>",
        unk_token: str = "<unk>",
        pad_token: str = "<pad>",
        mask_token: str = "<mask>",
        additional_special_tokens: Sequence[str] | None = None,
        add_prefix_space: bool = True,
        **kwargs: Any,
    ):
        if additional_special_tokens is None and not isinstance(
            kwargs.get("extra_special_tokens"), (list, tuple)
        ):
            additional_special_tokens = ["<s>NOTUSED", "</s>NOTUSED", "<unk>NOTUSED"]
        super().__init__(
            vocab_file,
            tokenizer_file,
            bos_token=bos_token,
            eos_token=eos_token,
            sep_token=sep_token,
            cls_token=cls_token,
            unk_token=unk_token,
            pad_token=pad_token,
            mask_token=mask_token,
            add_prefix_space=add_prefix_space,
            additional_special_tokens=additional_special_tokens,
            **kwargs,
        )


RobertaTokenizerFast = RobertaTokenizer
XLMRobertaTokenizerFast = XLMRobertaTokenizer
CamembertTokenizerFast = CamembertTokenizer
