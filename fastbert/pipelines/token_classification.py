"""``token-classification`` (``ner``): a label per token, or per entity with an aggregation strategy."""

from __future__ import annotations

from typing import Any

from .base import Pipeline, label_name, model_output, softmax, whole_number
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
    ):
        pre: dict[str, Any] = {}
        post: dict[str, Any] = {}
        strategy = None
        if aggregation_strategy is not None:
            strategy = str(getattr(aggregation_strategy, "value", aggregation_strategy)).lower()
            if strategy not in AGGREGATION_STRATEGIES:
                raise ValueError(
                    f"unknown aggregation_strategy {aggregation_strategy!r}: use one of {', '.join(AGGREGATION_STRATEGIES)}"
                )
            post["aggregation_strategy"] = strategy
        if ignore_labels is not None:
            post["ignore_labels"] = list(ignore_labels)
        if stride is not None:
            stride = whole_number("stride", stride, minimum=0)
            if stride >= self.max_length:
                raise ValueError(
                    "`stride` must be less than `tokenizer.model_max_length` (or even lower if the tokenizer adds special tokens)"
                )
            if strategy in (None, "none"):
                raise ValueError(
                    '`stride` was provided to process all the text but `aggregation_strategy="none"`, '
                    "please select another one instead."
                )
            pre["stride"] = int(stride)
        if truncation is not None:
            pre["truncation"] = truncation
        return {"preprocess": pre, "postprocess": post}

    def preprocess(self, sentence: Any, stride: int | None = None, truncation: Any = True):
        if not isinstance(sentence, str):
            raise ValueError("token-classification takes an untokenized string")
        common = dict(return_special_tokens_mask=True, return_offsets_mapping=True)
        if stride is None:
            enc = self._encode(sentence, truncation=truncation, **common)
            return [
                self._feature(
                    enc,
                    sentence=sentence,
                    offsets=[tuple(o) for o in enc["offset_mapping"]],
                    special=list(enc["special_tokens_mask"]),
                )
            ]
        enc = self.tokenizer(
            sentence,
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
                    offsets=[tuple(o) for o in enc["offset_mapping"][i]],
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

    def _gather_pre_entities(self, sentence, input_ids, scores, offsets, special, strategy):
        pre = []
        unk = self.tokenizer.unk_token_id
        for idx, token_scores in enumerate(scores):
            if special[idx]:
                continue
            word = self.tokenizer.convert_ids_to_tokens(int(input_ids[idx]))
            start, end = int(offsets[idx][0]), int(offsets[idx][1])
            word_ref = sentence[start:end]
            # WordPiece knows its subwords: a continuation token is longer than its text ("##ing")
            is_subword = len(word) != len(word_ref)
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
