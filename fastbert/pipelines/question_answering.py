"""``question-answering``: extractive answers, long contexts split into overlapping spans."""

from __future__ import annotations

from typing import Any

import numpy as np

from .base import Pipeline, PipelineKeyError, model_output, whole_number


class QuestionAnsweringPipeline(Pipeline):
    """``question-answering``: extractive answers ``{score, start, end, answer}``; long contexts are
    split into spans of ``max_seq_len`` tokens overlapping by ``doc_stride``."""

    # the shortest input: a question of one token and a context of one, with a pair's special tokens
    _least_text = (2, True)

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
            pre["doc_stride"] = whole_number("doc_stride", doc_stride, minimum=0)
        if max_seq_len is not None:
            pre["max_seq_len"] = whole_number("max_seq_len", max_seq_len)
        if topk is not None and top_k is None:
            top_k = topk
        if top_k is not None:
            post["top_k"] = whole_number("top_k", top_k)
        if max_answer_len is not None:
            post["max_answer_len"] = whole_number("max_answer_len", max_answer_len)
        if handle_impossible_answer is not None:
            post["handle_impossible_answer"] = bool(handle_impossible_answer)
        if align_to_words is not None:
            post["align_to_words"] = bool(align_to_words)
        return {"preprocess": pre, "postprocess": post}

    @staticmethod
    def _example(item: Any) -> dict[str, str]:
        if hasattr(item, "question_text") and hasattr(item, "context_text"):
            # transformers 4's SquadExample (what its QuestionAnsweringPipeline.create_sample makes)
            item = {"question": item.question_text, "context": item.context_text}
        if isinstance(item, dict):
            for k in ("question", "context"):
                if k not in item:
                    raise PipelineKeyError(
                        "question-answering takes a dictionary with keys {question:..., context:...}"
                    )
                if item[k] is None:
                    raise ValueError(f"`{k}` cannot be None")
                if not isinstance(item[k], str):  # (the tokenizer's error named text and text_pair)
                    raise ValueError(f"`{k}` must be a string, got {type(item[k]).__name__}")
                if len(item[k]) == 0:
                    raise ValueError(f"`{k}` cannot be empty")
            return {"question": item["question"], "context": item["context"]}
        raise ValueError(
            "question-answering takes {'question': ..., 'context': ...} dictionaries (or transformers 4's "
            f"SquadExample), got {type(item).__name__}"
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
        if room <= 0:  # (doc_stride named only where the caller gave it)
            raise ValueError(
                f"question-answering: a question of {n_question} tokens leaves no room for the context in "
                f"max_seq_len={max_seq_len} tokens: shorten the question or raise max_seq_len "
                f"(the model takes {self.max_length})"
            )
        if stride_given and doc_stride >= room:
            raise ValueError(
                f"question-answering: a question of {n_question} tokens and doc_stride={doc_stride} leave no room "
                f"for the context in max_seq_len={max_seq_len} tokens: shorten the question, lower doc_stride "
                f"or raise max_seq_len (the model takes {self.max_length})"
            )
        doc_stride = min(doc_stride, room - 1)
        # token types only where the tokenizer's model takes them (transformers' pipeline passes the model only
        # the tokenizer's model_input_names): the tokenizers library gives the overflowing spans of a pair type
        # ids of 1 also where the tokenizer has none, which XLM-R's and CamemBERT's table (type_vocab_size 1)
        # does not hold
        with_types = "token_type_ids" in getattr(self.tokenizer, "model_input_names", ("token_type_ids",))
        enc = self.tokenizer(
            text=ex["question"] if question_first else ex["context"],
            text_pair=ex["context"] if question_first else ex["question"],
            truncation="only_second" if question_first else "only_first",
            max_length=max_seq_len,
            stride=doc_stride,
            return_token_type_ids=with_types,
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
        start, end = model_output(output, "start_logits"), model_output(output, "end_logits")
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
                # transformers 4.54+ (PR #39193): aligned to words, a window proposes top_k * 2 + 10 spans, so
                # that spans merged into one answer leave enough candidates
                top_k * 2 + 10 if align_to_words else top_k,
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
