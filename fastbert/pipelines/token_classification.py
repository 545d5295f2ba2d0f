"""``token-classification`` (``ner``): a label per token, or per entity with an aggregation strategy."""

from __future__ import annotations

from typing import Any

from .base import Pipeline, label_name, model_output, softmax, warn_at_caller, whole_number
from .token_aggregation import AGGREGATION_STRATEGIES, aggregate, aggregate_overlapping, plain_entity


class TokenClassificationPipeline(Pipeline):
    """``token-classification`` (``ner``): a label per token, or per entity with ``aggregation_strategy``."""

    task = "token-classification"

    def _sanitize(
        self,
        ignore_labels: list[str] | None = None,
        aggregation_strategy: Any = None,
        stride: int | None = None,
        truncation: Any = None,
        is_split_into_words: bool = False,
        delimiter: str | None = None,
        grouped_entities: bool | None = None,
        ignore_subwords: bool | None = None,
        offset_mapping: Any = None,
    ):
        pre: dict[str, Any] = {}
        if offset_mapping is not None:
            # the inputs' own (start, end) of each token, paired with them in __call__ (transformers 4.57's
            # offset_mapping=, for tokenizers without offsets)
            if stride is not None or is_split_into_words:
                raise ValueError(
                    "offset_mapping gives the (start, end) of each token of one untruncated text: it cannot "
                    "be used with stride or is_split_into_words"
                )
        post: dict[str, Any] = {}
        if is_split_into_words:
            pre["is_split_into_words"] = True
            pre["delimiter"] = " " if delimiter is None else delimiter
        if grouped_entities is not None or ignore_subwords is not None:
            # transformers 4's deprecated spelling of the strategy (gone from transformers 5)
            if grouped_entities and ignore_subwords:
                aggregation_strategy = "first"
            elif grouped_entities:
                aggregation_strategy = "simple"
            else:
                aggregation_strategy = "none"
            for name, value in (("grouped_entities", grouped_entities), ("ignore_subwords", ignore_subwords)):
                if value is not None:
                    self._warn_param(
                        name,
                        f"`{name}` is deprecated and will be removed in version v5.0.0, defaulted to"
                        f' `aggregation_strategy="{aggregation_strategy}"` instead.',
                    )
        strategy = None
        if aggregation_strategy is not None:
            strategy = str(getattr(aggregation_strategy, "value", aggregation_strategy)).lower()
            if strategy not in AGGREGATION_STRATEGIES:
                raise ValueError(
                    f"unknown aggregation_strategy {aggregation_strategy!r}: use one of {', '.join(AGGREGATION_STRATEGIES)}"
                )
            post["aggregation_strategy"] = strategy
        if ignore_labels is not None:
            # a string: list() would ignore its letters (transformers raises TypeError)
            if isinstance(ignore_labels, str):
                raise TypeError(
                    f"ignore_labels is a list of labels, not a string: pass ignore_labels=[{ignore_labels!r}]"
                )
            post["ignore_labels"] = list(ignore_labels)
        if stride is not None:
            stride = whole_number("stride", stride, minimum=0)
            if stride >= self.max_length:
                raise ValueError(
                    "`stride` must be less than `tokenizer.model_max_length` (or even lower if the tokenizer adds special tokens)"
                )
            if strategy == "none":  # asked for; without a strategy the windows' tokens are merged
                raise ValueError(
                    '`stride` was provided to process all the text but `aggregation_strategy="none"`, '
                    "please select another one instead."
                )
            pre["stride"] = int(stride)
        if truncation is not None:
            pre["truncation"] = truncation
        return {"preprocess": pre, "postprocess": post}

    def __call__(self, inputs: Any, **kwargs: Any) -> Any:
        offsets = kwargs.get("offset_mapping", self._init_params.get("offset_mapping"))
        if offsets is not None:
            inputs = _with_offsets(inputs, offsets)
        split = kwargs.get("is_split_into_words", self._init_params.get("is_split_into_words", False))
        if (
            split
            and isinstance(inputs, (list, tuple))
            and not all(isinstance(x, (list, tuple)) for x in inputs)
        ):
            # one pre-tokenized input: a batch of one, as transformers answers it (a list of one result)
            inputs = [inputs]
        return super().__call__(inputs, **kwargs)

    def preprocess(
        self,
        sentence: Any,
        stride: int | None = None,
        truncation: Any = None,
        is_split_into_words: bool = False,
        delimiter: str = " ",
    ):
        word_starts = None
        given_offsets = None
        if isinstance(sentence, _WithOffsets):
            sentence, given_offsets = sentence.text, sentence.offsets
        if is_split_into_words:
            if not isinstance(sentence, (list, tuple)):
                raise ValueError("When `is_split_into_words=True`, `sentence` must be a list of tokens.")
            words = list(sentence)
            sentence = delimiter.join(words)  # the text the offsets (and start/end) refer to
            word_starts, at = [], 0
            for word in words:
                word_starts.append(at)
                at += len(word) + len(delimiter)
            text: Any = words
            common = dict(
                return_special_tokens_mask=True, return_offsets_mapping=True, is_split_into_words=True
            )
        elif not isinstance(sentence, str):
            raise ValueError("token-classification takes an untokenized string")
        else:
            text = sentence
            common = dict(return_special_tokens_mask=True, return_offsets_mapping=True)

        def offsets_of(enc: Any, i: int | None) -> list[tuple[int, int]]:
            offsets = [tuple(o) for o in (enc["offset_mapping"] if i is None else enc["offset_mapping"][i])]
            if word_starts is None:
                return offsets
            # pre-tokenized words: offsets are within each word; shifted to the joined sentence
            word_ids = enc.word_ids(0 if i is None else i)
            return [
                (s + word_starts[w], e + word_starts[w]) if w is not None else (s, e)
                for (s, e), w in zip(offsets, word_ids)
            ]

        if stride is None:
            enc = self._encode(text, truncation=truncation, **common)
            offsets = offsets_of(enc, None)
            if given_offsets is not None:
                if len(given_offsets) < len(offsets):
                    raise ValueError(
                        f"offset_mapping has {len(given_offsets)} (start, end) pairs for an input of "
                        f"{len(offsets)} tokens (special tokens included)"
                    )
                offsets = [tuple(o) for o in given_offsets[: len(offsets)]]
            return [
                self._feature(
                    enc,
                    sentence=sentence,
                    offsets=offsets,
                    special=list(enc["special_tokens_mask"]),
                )
            ]
        enc = self.tokenizer(
            text,
            truncation=True,
            max_length=self.max_length,
            stride=stride,
            return_overflowing_tokens=True,
            verbose=False,
            **common,
        )
        feats = []
        for i in range(len(enc["input_ids"])):
            feats.append(
                self._feature(
                    enc,
                    i,
                    sentence=sentence,
                    offsets=offsets_of(enc, i),
                    special=list(enc["special_tokens_mask"][i]),
                )
            )
        return feats

    def extract(self, output, attention_mask, lengths, features, **_):
        logits = model_output(output, "logits")
        return [logits[r, :L].float().cpu().numpy() for r, L in enumerate(lengths)]

    def postprocess(
        self, item, features, aggregation_strategy: str = "none", ignore_labels: list[str] | None = None
    ):
        if ignore_labels is None:
            ignore_labels = ["O"]
        entities: list[dict[str, Any]] = []
        for feat in features:
            scores = softmax(feat["output"])
            pre = self._gather_pre_entities(
                feat["sentence"],
                feat["input_ids"],
                scores,
                feat["offsets"],
                feat["special"],
                aggregation_strategy,
            )
            grouped = aggregate(
                pre, aggregation_strategy, self._label, self.tokenizer.convert_tokens_to_string
            )
            entities.extend(
                e
                for e in grouped
                if e.get("entity") not in ignore_labels and e.get("entity_group") not in ignore_labels
            )
        if len(features) > 1:
            entities = aggregate_overlapping(entities)
        return [plain_entity(e) for e in entities]

    def _label(self, i: int) -> str:
        return label_name(self.model.config, i)

    def _marks_subwords(self) -> bool:
        """Whether the tokenizer's model marks continuation tokens (WordPiece's ``##``), as transformers asks
        its backend; the others (byte-level BPE, Unigram) fall back to the space heuristic."""
        backend = getattr(self.tokenizer, "_tokenizer", None)
        return bool(backend is not None and getattr(backend.model, "continuing_subword_prefix", None))

    def _gather_pre_entities(self, sentence, input_ids, scores, offsets, special, strategy):
        pre = []
        unk = self.tokenizer.unk_token_id
        real_words = self._marks_subwords()
        if not real_words and strategy in ("first", "average", "max"):
            warn_at_caller("Tokenizer does not support real words, using fallback heuristic")
        for idx, token_scores in enumerate(scores):
            if special[idx]:
                continue
            word = self.tokenizer.convert_ids_to_tokens(int(input_ids[idx]))
            start, end = int(offsets[idx][0]), int(offsets[idx][1])
            word_ref = sentence[start:end]
            if real_words:
                # WordPiece knows its subwords: a continuation token is longer than its text ("##ing")
                is_subword = len(word) != len(word_ref)
            else:
                # BPE without a continuation prefix, Unigram: a token that does not follow a space
                is_subword = start > 0 and " " not in sentence[start - 1 : start + 1]
            if int(input_ids[idx]) == unk:
                word = word_ref
                is_subword = False
            pre.append(
                {
                    "word": word,
                    "scores": token_scores,
                    "start": start,
                    "end": end,
                    "index": idx,
                    "is_subword": is_subword,
                }
            )
        return pre


class _WithOffsets:
    """One input with the offset_mapping given for it."""

    __slots__ = ("text", "offsets")

    def __init__(self, text: Any, offsets: Any) -> None:
        self.text = text
        self.offsets = offsets


def _with_offsets(inputs: Any, offsets: Any) -> Any:
    """``inputs`` paired with ``offset_mapping``: a list of (start, end) for one text, or a list of such
    lists, one per input of a list (transformers 4.57 gives every input of a batch the first one's)."""
    if not isinstance(offsets, (list, tuple)) or not offsets:
        raise ValueError("offset_mapping must be a list of (start, end) pairs, or a list of them per input")
    one = all(
        isinstance(o, (list, tuple)) and len(o) == 2 and all(isinstance(v, int) for v in o) for o in offsets
    )
    if isinstance(inputs, str):
        if not one and len(offsets) == 1:
            offsets = offsets[0]
        return _WithOffsets(inputs, offsets)
    if isinstance(inputs, (list, tuple)):
        batch = [offsets] if one else list(offsets)
        if len(batch) != len(inputs):
            raise ValueError("offset_mapping should have the same batch size as the input")
        return [_WithOffsets(x, o) for x, o in zip(inputs, batch)]
    raise ValueError("offset_mapping is for a text or a list of texts")
