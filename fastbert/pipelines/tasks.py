"""The task pipelines: what each task makes of an input, keeps of the model output, and returns.

Each returns what transformers' pipeline of the same name returns (keys, order, nesting), with
Python floats for scores.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch

from .base import Pipeline, _preview

# ================================================================================================ fill-mask


class FillMaskPipeline(Pipeline):
    """``fill-mask``: the ``top_k`` most likely tokens at each ``[MASK]``, optionally among ``targets``."""

    task = "fill-mask"

    def _sanitize(
        self,
        top_k: int | None = None,
        targets: Any = None,
        truncation: Any = None,
        tokenizer_kwargs: dict | None = None,
    ):
        if getattr(self.tokenizer, "mask_token_id", None) is None:
            raise ValueError("fill-mask: the tokenizer defines no mask token")
        post: dict[str, Any] = {}
        if top_k is not None:
            if int(top_k) < 1:
                raise ValueError(f"top_k must be at least 1, got {top_k}")
            post["top_k"] = int(top_k)
        if targets is not None:
            post["target_ids"] = self._target_ids(targets)
        pre: dict[str, Any] = {"tokenizer_kwargs": dict(tokenizer_kwargs or {})}
        if truncation is not None:
            pre["truncation"] = truncation
        return {"preprocess": pre, "postprocess": post}

    def _target_ids(self, targets: Any) -> np.ndarray:
        if isinstance(targets, str):
            targets = [targets]
        vocab = self.tokenizer.get_vocab()
        ids = []
        for target in targets:
            id_ = vocab.get(target)
            if id_ is None:
                pieces = self.tokenizer(
                    target,
                    add_special_tokens=False,
                    return_attention_mask=False,
                    return_token_type_ids=False,
                    max_length=1,
                    truncation=True,
                )["input_ids"]
                if len(pieces) == 0:
                    warnings.warn(
                        f"The specified target token `{target}` does not exist in the model vocabulary. "
                        "We cannot replace it with anything meaningful, ignoring it",
                        UserWarning,
                        stacklevel=4,
                    )
                    continue
                id_ = pieces[0]
                warnings.warn(
                    f"The specified target token `{target}` does not exist in the model vocabulary. "
                    f"Replacing with `{self.tokenizer.convert_ids_to_tokens(id_)}`.",
                    UserWarning,
                    stacklevel=4,
                )
            ids.append(id_)
        ids = list(set(ids))
        if not ids:
            raise ValueError("At least one target must be provided when passed.")
        return np.array(ids)

    def preprocess(self, text: Any, truncation: Any = True, tokenizer_kwargs: dict | None = None):
        if not isinstance(text, str):
            raise ValueError(f"fill-mask takes a text (str), got {type(text).__name__}")
        kwargs = dict(tokenizer_kwargs or {})
        truncation = kwargs.pop("truncation", truncation)
        enc = self._encode(text, truncation=truncation, **kwargs)
        ids = list(enc["input_ids"])
        mask_id = self.tokenizer.mask_token_id
        positions = [i for i, t in enumerate(ids) if t == mask_id]
        if not positions:
            raise ValueError(
                f"fill-mask: no mask token ({self.tokenizer.mask_token}) found in the input {_preview(text)}"
            )
        return [self._feature(enc, positions=positions)]

    def extract(self, output, attention_mask, lengths, features, **_):
        logits = output["logits"] if isinstance(output, dict) else output.logits
        outs = []
        for r, f in enumerate(features):
            pos = torch.tensor(f["positions"], device=logits.device)
            outs.append(logits[r].index_select(0, pos).float().cpu())
        return outs

    def postprocess(self, item, features, top_k: int = 5, target_ids: np.ndarray | None = None):
        feat = features[0]
        if target_ids is not None and target_ids.shape[0] < top_k:
            top_k = target_ids.shape[0]
        input_ids = np.array(feat["input_ids"])
        probs = feat["output"].softmax(dim=-1)
        if target_ids is not None:
            probs = probs[..., torch.as_tensor(target_ids)]
        top_k = min(top_k, probs.shape[-1])
        values, predictions = probs.topk(top_k)
        pad_id = self.tokenizer.pad_token_id
        single = values.shape[0] == 1
        result = []
        for i, (vals, preds) in enumerate(zip(values.tolist(), predictions.tolist())):
            row = []
            for v, p in zip(vals, preds):
                tokens = input_ids.copy()
                if target_ids is not None:
                    p = int(target_ids[p])
                tokens[feat["positions"][i]] = p
                tokens = tokens[np.where(tokens != pad_id)]
                sequence = self.tokenizer.decode(tokens.tolist(), skip_special_tokens=single)
                row.append(
                    {"score": v, "token": p, "token_str": self.tokenizer.decode([p]), "sequence": sequence}
                )
            result.append(row)
        return result[0] if single else result

    def _many(self, items, params):
        out = super()._many(items, params)
        return out[0] if len(items) == 1 else out


# ============================================================================ feature-extraction, embeddings


class FeatureExtractionPipeline(Pipeline):
    """``feature-extraction``: the last hidden state of every token, ``[1][tokens][hidden]`` per input."""

    task = "feature-extraction"

    def _sanitize(
        self, truncation: Any = None, tokenize_kwargs: dict | None = None, return_tensors: bool | None = None
    ):
        pre: dict[str, Any] = {"tokenize_kwargs": dict(tokenize_kwargs or {})}
        if truncation is not None:
            if "truncation" in pre["tokenize_kwargs"]:
                raise ValueError(
                    "truncation parameter defined twice (given as keyword argument as well as in tokenize_kwargs)"
                )
            pre["truncation"] = truncation
        post = {"return_tensors": bool(return_tensors)} if return_tensors is not None else {}
        return {"preprocess": pre, "postprocess": post}

    def _text_input(self, item: Any) -> tuple[Any, Any]:
        if isinstance(item, dict):
            if "text" not in item:
                raise ValueError(f"{self.task}: a dict input needs a 'text' key (and optionally 'text_pair')")
            return item["text"], item.get("text_pair")
        if not isinstance(item, str):
            raise ValueError(f"{self.task} takes a text (str), got {type(item).__name__}")
        return item, None

    def preprocess(self, item: Any, truncation: Any = True, tokenize_kwargs: dict | None = None):
        text, pair = self._text_input(item)
        kwargs = dict(tokenize_kwargs or {})
        truncation = kwargs.pop("truncation", truncation)
        return [self._feature(self._encode(text, pair, truncation=truncation, **kwargs))]

    @staticmethod
    def _hidden(output: Any) -> torch.Tensor:
        if isinstance(output, (tuple, list)):
            return output[0]
        h = getattr(output, "last_hidden_state", None)
        if h is None:
            h = output[0]
        return h

    def extract(self, output, attention_mask, lengths, features, **_):
        hidden = self._hidden(output)
        return [hidden[r, :L].cpu() for r, L in enumerate(lengths)]

    def postprocess(self, item, features, return_tensors: bool = False):
        h = features[0]["output"].unsqueeze(0)
        return h if return_tensors else h.tolist()


POOLING_MODES = ("cls", "max", "mean", "mean_sqrt_len_tokens", "weightedmean", "lasttoken")
_LEGACY_POOLING_KEYS = {
    "pooling_mode_cls_token": "cls",
    "pooling_mode_max_tokens": "max",
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len_tokens",
    "pooling_mode_weightedmean_tokens": "weightedmean",
    "pooling_mode_lasttoken": "lasttoken",
}


def pooling_modes_from_config(cfg: dict[str, Any] | None) -> tuple[str, ...]:
    """Pooling modes of a sentence-transformers ``1_Pooling/config.json`` (old boolean keys or new)."""
    if not cfg:
        return ("mean",)
    mode = cfg.get("pooling_mode")
    if mode is not None:
        modes = (mode,) if isinstance(mode, str) else tuple(mode)
    else:
        modes = tuple(m for k, m in _LEGACY_POOLING_KEYS.items() if cfg.get(k, False)) or ("mean",)
    return modes


class SentenceEmbeddingPipeline(FeatureExtractionPipeline):
    """``sentence-embedding``: one vector per input, pooled as the sentence-transformers folder says
    (``1_Pooling/config.json``: mean / CLS / max..., then ``Normalize`` when ``modules.json`` lists it)."""

    task = "sentence-embedding"

    def __init__(self, *args: Any, pooling: Any = None, normalize: bool | None = None, **kwargs: Any) -> None:
        modes = (pooling,) if isinstance(pooling, str) else tuple(pooling or ("mean",))
        for m in modes:
            if m not in POOLING_MODES:
                raise ValueError(f"unknown pooling mode {m!r}: use one of {', '.join(POOLING_MODES)}")
        self.pooling = modes
        self.normalize = bool(normalize)
        super().__init__(*args, **kwargs)

    def extract(self, output, attention_mask, lengths, features, **_):
        hidden = self._hidden(output).float()
        mask = attention_mask.to(hidden.dtype).unsqueeze(-1)
        vectors = []
        for mode in self.pooling:
            if mode == "cls":
                vectors.append(hidden[:, 0])
            elif mode == "max":
                vectors.append(hidden.masked_fill(mask == 0, float("-inf")).max(dim=1).values)
            elif mode in ("mean", "mean_sqrt_len_tokens"):
                total = (hidden * mask).sum(dim=1)
                count = mask.sum(dim=1).clamp(min=1e-9)
                vectors.append(total / (count if mode == "mean" else count.sqrt()))
            elif mode == "weightedmean":
                w = (
                    torch.arange(1, hidden.shape[1] + 1, device=hidden.device, dtype=hidden.dtype).view(
                        1, -1, 1
                    )
                    * mask
                )
                vectors.append((hidden * w).sum(dim=1) / w.sum(dim=1).clamp(min=1e-9))
            elif mode == "lasttoken":
                last = torch.tensor([L - 1 for L in lengths], device=hidden.device)
                vectors.append(hidden[torch.arange(len(lengths), device=hidden.device), last])
        pooled = torch.cat(vectors, dim=-1)
        if self.normalize:
            pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
        return list(pooled.cpu().unbind(0))

    def postprocess(self, item, features, return_tensors: bool = False):
        v = features[0]["output"]
        return v if return_tensors else v.tolist()

    def _many(self, items, params):
        out = super()._many(items, params)
        if params["postprocess"].get("return_tensors") and out:
            return torch.stack(out)
        return out


# ===================================================================================== text-classification


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - np.max(x, axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


_FUNCTIONS = ("sigmoid", "softmax", "none")


class TextClassificationPipeline(Pipeline):
    """``text-classification``: label and score of a text or a ``{"text", "text_pair"}`` pair."""

    task = "text-classification"
    _NO_TOP_K = object()

    def _sanitize(
        self,
        function_to_apply: Any = None,
        top_k: Any = _NO_TOP_K,
        truncation: Any = None,
        **tokenizer_kwargs: Any,
    ):
        post: dict[str, Any] = {}
        if top_k is not self._NO_TOP_K:
            if top_k is not None and int(top_k) < 1:
                raise ValueError(f"top_k must be at least 1 or None, got {top_k}")
            post["top_k"] = top_k
            post["_legacy"] = False
        if function_to_apply is not None:
            name = getattr(function_to_apply, "value", function_to_apply)
            name = str(name).lower()
            if name not in _FUNCTIONS:
                raise ValueError(
                    f"Unrecognized `function_to_apply` argument: {function_to_apply!r} (use sigmoid, softmax or none)"
                )
            post["function_to_apply"] = name
        pre: dict[str, Any] = {"tokenizer_kwargs": tokenizer_kwargs}
        if truncation is not None:
            pre["truncation"] = truncation
        return {"preprocess": pre, "postprocess": post}

    def preprocess(self, item: Any, truncation: Any = True, tokenizer_kwargs: dict | None = None):
        kwargs = dict(tokenizer_kwargs or {})
        if isinstance(item, dict):
            if "text" not in item:
                raise ValueError('a text pair is a dictionary {"text": "My text", "text_pair": "My pair"}')
            enc = self._encode(item["text"], item.get("text_pair"), truncation=truncation, **kwargs)
        elif isinstance(item, list) and len(item) == 1 and isinstance(item[0], list) and len(item[0]) == 2:
            enc = self._encode(item[0][0], item[0][1], truncation=truncation, **kwargs)
        elif isinstance(item, str):
            enc = self._encode(item, truncation=truncation, **kwargs)
        else:
            raise ValueError(
                "The pipeline received invalid inputs, if you are trying to send text pairs, you can try to send a"
                ' dictionary `{"text": "My text", "text_pair": "My pair"}` in order to send a text pair.'
            )
        return [self._feature(enc)]

    def extract(self, output, attention_mask, lengths, features, **_):
        logits = output["logits"] if isinstance(output, dict) else output.logits
        return list(logits.float().cpu().unbind(0))

    def _default_function(self) -> str:
        config = self.model.config
        problem = getattr(config, "problem_type", None)
        num_labels = getattr(config, "num_labels", None) or len(getattr(config, "id2label", {}) or {})
        if problem == "regression":
            return "none"
        if problem == "multi_label_classification" or num_labels == 1:
            return "sigmoid"
        if problem == "single_label_classification" or num_labels > 1:
            return "softmax"
        fn = getattr(config, "function_to_apply", None)
        return str(fn).lower() if fn else "none"

    def _label(self, i: int) -> str:
        id2label = self.model.config.id2label
        if i in id2label:
            return id2label[i]
        return id2label.get(str(i), f"LABEL_{i}")

    def postprocess(
        self, item, features, function_to_apply: str | None = None, top_k: Any = 1, _legacy: bool = True
    ):
        fn = function_to_apply or self._default_function()
        outputs = features[0]["output"].numpy()
        scores = _sigmoid(outputs) if fn == "sigmoid" else _softmax(outputs) if fn == "softmax" else outputs
        if top_k == 1 and _legacy:
            return {"label": self._label(int(scores.argmax())), "score": scores.max().item()}
        result = [{"label": self._label(i), "score": s.item()} for i, s in enumerate(scores)]
        if not _legacy:
            result.sort(key=lambda x: x["score"], reverse=True)
            if top_k is not None:
                result = result[:top_k]
        return result

    def __call__(self, inputs: Any, **kwargs: Any) -> Any:
        out = super().__call__(inputs, **kwargs)
        # as transformers: one text gives a list, unless top_k is given to this call
        if isinstance(inputs, str) and "top_k" not in kwargs:
            return [out]
        return out


# ==================================================================================== token-classification

AGGREGATION_STRATEGIES = ("none", "simple", "first", "average", "max")


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
        logits = output["logits"] if isinstance(output, dict) else output.logits
        return [logits[r, :L].float().cpu().numpy() for r, L in enumerate(lengths)]

    def postprocess(
        self, item, features, aggregation_strategy: str = "none", ignore_labels: list[str] | None = None
    ):
        if ignore_labels is None:
            ignore_labels = ["O"]
        entities: list[dict[str, Any]] = []
        for feat in features:
            logits = feat["output"]
            scores = _softmax(logits)
            pre = self._gather_pre_entities(
                feat["sentence"],
                feat["input_ids"],
                scores,
                feat["offsets"],
                feat["special"],
                aggregation_strategy,
            )
            grouped = self._aggregate(pre, aggregation_strategy)
            entities.extend(
                e
                for e in grouped
                if e.get("entity") not in ignore_labels and e.get("entity_group") not in ignore_labels
            )
        if len(features) > 1:
            entities = self._aggregate_overlapping(entities)
        return [_py_entity(e) for e in entities]

    def _label(self, i: int) -> str:
        id2label = self.model.config.id2label
        i = int(i)
        if i in id2label:
            return id2label[i]
        return id2label.get(str(i), f"LABEL_{i}")

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

    def _aggregate(self, pre, strategy):
        if strategy in ("none", "simple"):
            entities = []
            for p in pre:
                i = int(p["scores"].argmax())
                entities.append(
                    {
                        "entity": self._label(i),
                        "score": p["scores"][i],
                        "index": p["index"],
                        "word": p["word"],
                        "start": p["start"],
                        "end": p["end"],
                    }
                )
        else:
            entities = self._aggregate_words(pre, strategy)
        if strategy == "none":
            return entities
        return self._group_entities(entities)

    def _aggregate_word(self, entities, strategy):
        word = self.tokenizer.convert_tokens_to_string([e["word"] for e in entities])
        if strategy == "first":
            scores = entities[0]["scores"]
            idx = int(scores.argmax())
            score = scores[idx]
        elif strategy == "max":
            best = max(entities, key=lambda e: e["scores"].max())
            scores = best["scores"]
            idx = int(scores.argmax())
            score = scores[idx]
        elif strategy == "average":
            avg = np.nanmean(np.stack([e["scores"] for e in entities]), axis=0)
            idx = int(avg.argmax())
            score = avg[idx]
        else:
            raise ValueError("Invalid aggregation_strategy")
        return {
            "entity": self._label(idx),
            "score": score,
            "word": word,
            "start": entities[0]["start"],
            "end": entities[-1]["end"],
        }

    def _aggregate_words(self, entities, strategy):
        words = []
        group = None
        for e in entities:
            if group is None:
                group = [e]
            elif e["is_subword"]:
                group.append(e)
            else:
                words.append(self._aggregate_word(group, strategy))
                group = [e]
        if group is not None:
            words.append(self._aggregate_word(group, strategy))
        return words

    @staticmethod
    def _tag(name: str) -> tuple[str, str]:
        if name.startswith("B-"):
            return "B", name[2:]
        if name.startswith("I-"):
            return "I", name[2:]
        return "I", name

    def _group_sub_entities(self, entities):
        entity = entities[0]["entity"].split("-", 1)[-1]
        scores = np.nanmean([e["score"] for e in entities])
        return {
            "entity_group": entity,
            "score": np.mean(scores),
            "word": self.tokenizer.convert_tokens_to_string([e["word"] for e in entities]),
            "start": entities[0]["start"],
            "end": entities[-1]["end"],
        }

    def _group_entities(self, entities):
        groups = []
        current: list[dict] = []
        for e in entities:
            if not current:
                current.append(e)
                continue
            bi, tag = self._tag(e["entity"])
            _, last_tag = self._tag(current[-1]["entity"])
            if tag == last_tag and bi != "B":
                current.append(e)
            else:
                groups.append(self._group_sub_entities(current))
                current = [e]
        if current:
            groups.append(self._group_sub_entities(current))
        return groups

    @staticmethod
    def _aggregate_overlapping(entities):
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


def _py_entity(e: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in e.items():
        if isinstance(v, np.generic):
            v = v.item()
        out[k] = v
    return out


# ====================================================================================== question-answering


class QuestionAnsweringPipeline(Pipeline):
    """``question-answering``: extractive answers ``{score, start, end, answer}``; long contexts are
    split into spans of ``max_seq_len`` tokens overlapping by ``doc_stride``."""

    task = "question-answering"

    def _sanitize(
        self,
        top_k: int | None = None,
        topk: int | None = None,
        doc_stride: int | None = None,
        max_answer_len: int | None = None,
        max_seq_len: int | None = None,
        max_question_len: int | None = None,
        handle_impossible_answer: bool | None = None,
        align_to_words: bool | None = None,
        padding: Any = None,
    ):
        pre: dict[str, Any] = {}
        post: dict[str, Any] = {}
        if doc_stride is not None:
            pre["doc_stride"] = int(doc_stride)
        if max_seq_len is not None:
            pre["max_seq_len"] = int(max_seq_len)
        if topk is not None and top_k is None:
            top_k = topk
        if top_k is not None:
            if top_k < 1:
                raise ValueError(f"top_k parameter should be >= 1 (got {top_k})")
            post["top_k"] = int(top_k)
        if max_answer_len is not None:
            if max_answer_len < 1:
                raise ValueError(f"max_answer_len parameter should be >= 1 (got {max_answer_len})")
            post["max_answer_len"] = int(max_answer_len)
        if handle_impossible_answer is not None:
            post["handle_impossible_answer"] = bool(handle_impossible_answer)
        if align_to_words is not None:
            post["align_to_words"] = bool(align_to_words)
        return {"preprocess": pre, "postprocess": post}

    @staticmethod
    def _example(item: Any) -> dict[str, str]:
        if isinstance(item, dict):
            for k in ("question", "context"):
                if k not in item:
                    raise ValueError(
                        "question-answering takes a dictionary with keys {question:..., context:...}"
                    )
                if item[k] is None:
                    raise ValueError(f"`{k}` cannot be None")
                if isinstance(item[k], str) and len(item[k]) == 0:
                    raise ValueError(f"`{k}` cannot be empty")
            return {"question": item["question"], "context": item["context"]}
        raise ValueError(
            f"question-answering takes {{'question': ..., 'context': ...}} dictionaries, got {type(item).__name__}"
        )

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        question = kwargs.pop("question", None)
        context = kwargs.pop("context", None)
        for key in ("X", "data"):
            if key in kwargs and not args:
                args = (kwargs.pop(key),)
        if args:
            if len(args) == 1:
                inputs = args[0]
            elif len(args) == 2 and all(isinstance(a, str) for a in args):
                inputs = {"question": args[0], "context": args[1]}
            else:
                inputs = list(args)
        elif question is not None and context is not None:
            if isinstance(question, list) and isinstance(context, str):
                inputs = [{"question": q, "context": context} for q in question]
            elif isinstance(question, list) and isinstance(context, list):
                if len(question) != len(context):
                    raise ValueError("Questions and contexts don't have the same lengths")
                inputs = [{"question": q, "context": c} for q, c in zip(question, context)]
            elif isinstance(question, str) and isinstance(context, str):
                inputs = {"question": question, "context": context}
            else:
                raise ValueError("Arguments can't be understood")
        else:
            raise ValueError(
                "question-answering needs question= and context=, or {'question': ..., 'context': ...} inputs"
            )
        if isinstance(inputs, (list, tuple)):
            inputs = [self._example(x) for x in inputs]
            if len(inputs) == 1:
                inputs = inputs[0]
        return super().__call__(inputs, **kwargs)

    def preprocess(self, item: Any, doc_stride: int | None = None, max_seq_len: int | None = None):
        ex = self._example(item)
        if max_seq_len is None:
            max_seq_len = min(self.max_length, 384)
        max_seq_len = min(max_seq_len, self.max_length)
        stride_given = doc_stride is not None
        if doc_stride is None:
            doc_stride = min(max_seq_len // 2, 128)
        if doc_stride > max_seq_len:
            raise ValueError(f"`doc_stride` ({doc_stride}) is larger than `max_seq_len` ({max_seq_len})")
        question_first = getattr(self.tokenizer, "padding_side", "right") == "right"
        # room for the context in each span; the tokenizers library panics when the stride does not fit
        n_question = len(self.tokenizer(ex["question"], add_special_tokens=False, verbose=False)["input_ids"])
        room = max_seq_len - n_question - self.tokenizer.num_special_tokens_to_add(pair=True)
        if room <= 0 or (stride_given and doc_stride >= room):
            raise ValueError(
                f"question-answering: a question of {n_question} tokens and doc_stride={doc_stride} leave no room "
                f"for the context in max_seq_len={max_seq_len} tokens: shorten the question, lower doc_stride "
                f"or raise max_seq_len (the model takes {self.max_length})"
            )
        doc_stride = min(doc_stride, room - 1)
        enc = self.tokenizer(
            text=ex["question"] if question_first else ex["context"],
            text_pair=ex["context"] if question_first else ex["question"],
            truncation="only_second" if question_first else "only_first",
            max_length=max_seq_len,
            stride=doc_stride,
            return_token_type_ids=True,
            return_overflowing_tokens=True,
            return_offsets_mapping=True,
            return_special_tokens_mask=True,
            verbose=False,
        )
        cls_id = getattr(self.tokenizer, "cls_token_id", None)
        context_seq = 1 if question_first else 0
        feats = []
        for i in range(len(enc["input_ids"])):
            seq_ids = enc.sequence_ids(i)
            ids = enc["input_ids"][i]
            p_mask = [int(s != 1) if question_first else 0 for s in seq_ids]
            if cls_id is not None:
                p_mask = [0 if t == cls_id else m for t, m in zip(ids, p_mask)]
            feats.append(
                self._feature(
                    enc,
                    i,
                    p_mask=p_mask,
                    offsets=[tuple(o) for o in enc["offset_mapping"][i]],
                    word_ids=enc.word_ids(i),
                    sequence_ids=seq_ids,
                    context_seq=context_seq,
                    context=ex["context"],
                )
            )
        return feats

    def extract(self, output, attention_mask, lengths, features, **_):
        if isinstance(output, dict):
            start, end = output["start_logits"], output["end_logits"]
        else:
            start, end = output.start_logits, output.end_logits
        start = start.float().cpu().numpy()
        end = end.float().cpu().numpy()
        return [(start[r, :L], end[r, :L]) for r, L in enumerate(lengths)]

    def postprocess(
        self,
        item,
        features,
        top_k: int = 1,
        handle_impossible_answer: bool = False,
        max_answer_len: int = 15,
        align_to_words: bool = True,
    ):
        min_null_score = 1000000.0
        answers: list[dict[str, Any]] = []
        for feat in features:
            start, end = feat["output"]
            starts, ends, scores, min_null_score = _select_starts_ends(
                start,
                end,
                np.array(feat["p_mask"]),
                np.ones(len(start), dtype=np.int64),
                min_null_score,
                top_k,
                handle_impossible_answer,
                max_answer_len,
            )
            for s, e, score in zip(starts, ends, scores):
                s_char, e_char = self._char_span(feat, int(s), int(e), align_to_words)
                text = feat["context"][s_char:e_char]
                same = next((a for a in answers if a["answer"].lower() == text.lower()), None)
                if same is not None:
                    same["score"] += score.item()
                else:
                    answers.append({"score": score.item(), "start": s_char, "end": e_char, "answer": text})
        if handle_impossible_answer:
            answers.append({"score": min_null_score, "start": 0, "end": 0, "answer": ""})
        answers = sorted(answers, key=lambda x: x["score"], reverse=True)[:top_k]
        return answers[0] if len(answers) == 1 else answers

    @staticmethod
    def _char_span(feat: dict[str, Any], s: int, e: int, align_to_words: bool) -> tuple[int, int]:
        offsets = feat["offsets"]
        if align_to_words:
            word_ids, seq_ids, ctx = feat["word_ids"], feat["sequence_ids"], feat["context_seq"]

            def word_chars(w: int | None) -> tuple[int, int] | None:
                if w is None:
                    return None
                toks = [t for t, (wi, si) in enumerate(zip(word_ids, seq_ids)) if wi == w and si == ctx]
                if not toks:
                    return None
                return offsets[toks[0]][0], offsets[toks[-1]][1]

            a, b = word_chars(word_ids[s]), word_chars(word_ids[e])
            if a is not None and b is not None:
                return int(a[0]), int(b[1])
        return int(offsets[s][0]), int(offsets[e][1])


def _decode_spans(start: np.ndarray, end: np.ndarray, topk: int, max_answer_len: int, undesired: np.ndarray):
    if start.ndim == 1:
        start = start[None]
    if end.ndim == 1:
        end = end[None]
    outer = np.matmul(np.expand_dims(start, -1), np.expand_dims(end, 1))
    candidates = np.tril(np.triu(outer), max_answer_len - 1)
    flat = candidates.flatten()
    if topk == 1:
        order = [np.argmax(flat)]
    elif len(flat) < topk:
        order = np.argsort(-flat)
    else:
        idx = np.argpartition(-flat, topk)[0:topk]
        order = idx[np.argsort(-flat[idx])]
    starts, ends = np.unravel_index(order, candidates.shape)[1:]
    keep = np.isin(starts, undesired.nonzero()) & np.isin(ends, undesired.nonzero())
    starts, ends = starts[keep], ends[keep]
    return starts, ends, candidates[0, starts, ends]


def _select_starts_ends(
    start, end, p_mask, attention_mask, min_null_score, top_k, handle_impossible_answer, max_answer_len
):
    start = np.asarray(start, dtype=np.float32)[None]
    end = np.asarray(end, dtype=np.float32)[None]
    undesired = np.abs(np.asarray(p_mask)[None] - 1) & np.asarray(attention_mask)[None]
    bad = undesired == 0.0
    start = np.where(bad, -10000.0, start)
    end = np.where(bad, -10000.0, end)
    start = np.exp(start - start.max(axis=-1, keepdims=True))
    start = start / start.sum()
    end = np.exp(end - end.max(axis=-1, keepdims=True))
    end = end / end.sum()
    if handle_impossible_answer:
        min_null_score = min(min_null_score, (start[0, 0] * end[0, 0]).item())
    start[0, 0] = end[0, 0] = 0.0
    starts, ends, scores = _decode_spans(start, end, top_k, max_answer_len, undesired)
    return starts, ends, scores, min_null_score
