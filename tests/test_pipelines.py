"""fastbert.pipeline against transformers.pipeline (a test-only dependency) on tiny random checkpoints of
every head, against sentence-transformers on the real MiniLM, and on antiberty's masked LM.

transformers 5 dropped the extractive question-answering pipeline; question-answering is checked
against a brute-force reference written here on transformers' model and tokenizer (its ``Encoding``
word/char maps), following transformers 4's pipeline: span softmax over context tokens, doc_stride
spans, answers aligned to words, equal answers merged.
"""

from __future__ import annotations

import re
import warnings

import model_helpers
import numpy as np
import pytest
import torch
from checkpoint_helpers import WORDS, save_tiny_checkpoints, wordpiece_vocab
from model_helpers import assert_same

import fastbert
from fastbert.core.tolerances import assert_close
from fastbert.hub import embedded_model_path
from fastbert.pipelines import SUPPORTED_TASKS, check_task

transformers = pytest.importorskip("transformers")

VOCAB = wordpiece_vocab()
HEADS = {
    "mlm": ("BertForMaskedLM", {}),
    "seq": ("BertForSequenceClassification", {"id2label": {0: "NEG", 1: "POS", 2: "NEU"}}),
    "seq1": ("BertForSequenceClassification", {"id2label": {0: "SCORE"}}),
    "tok": (
        "BertForTokenClassification",
        {"id2label": {0: "O", 1: "B-PER", 2: "I-PER", 3: "B-LOC", 4: "I-LOC"}},
    ),
    "qa": ("BertForQuestionAnswering", {}),
    "base": ("BertModel", {}),
}
MAX_POS = 64


def build_checkpoints(root) -> dict[str, str]:
    """Folders of tiny random checkpoints of every head, each with a tokenizer of VOCAB."""
    return save_tiny_checkpoints(root, HEADS, VOCAB, max_pos=MAX_POS, seed=0)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return build_checkpoints(tmp_path_factory.mktemp("pipelines"))


_HF: dict = {}
_FB: dict = {}


def hf_pipe(task, path, **kw):
    """transformers' pipeline on the CPU, as fastbert's without a device: transformers' default, device 0, is
    cuda:0 where there is a GPU."""
    key = (task, path, tuple(sorted(kw.items())))
    if key not in _HF:
        _HF[key] = transformers.pipeline(task, model=path, device=-1, **kw)
    return _HF[key]


def fb_pipe(task, path, **kw):
    key = (task, path, tuple(sorted(kw.items())))
    if key not in _FB:
        _FB[key] = fastbert.pipeline(task, model=path, **kw)
    return _FB[key]


# ======================================================================================= task names


def test_unknown_task_lists_tasks():
    with pytest.raises(ValueError) as e:
        fastbert.pipeline("summarization", model="x")
    for task in SUPPORTED_TASKS:
        assert task in str(e.value)
    assert check_task("ner") == "token-classification"
    assert check_task("sentiment-analysis") == "text-classification"


def test_no_transformers_import():
    import subprocess
    import sys

    code = (
        "import sys, fastbert\n"
        "vec = fastbert.pipeline('sentence-embedding')('a test')\n"
        "assert len(vec) == 384\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('transformers', 'sentence_transformers')]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# ======================================================================================= fill-mask

FILL_INPUTS = [
    "plants create [MASK] through a process known as photosynthesis.",
    "the [MASK] of france is paris.",
    "[MASK] lives in new [MASK].",
]


def test_fill_mask_matches_transformers(ckpt):
    ours, ref = fb_pipe("fill-mask", ckpt["mlm"]), hf_pipe("fill-mask", ckpt["mlm"])
    for x in FILL_INPUTS:  # one mask, several masks
        assert_same(ours(x), ref(x))
    assert_same(ours(FILL_INPUTS), ref(FILL_INPUTS))  # a list, mixed one/several masks
    assert_same(ours(FILL_INPUTS[:1]), ref(FILL_INPUTS[:1]))  # a one-element list
    assert_same(ours(FILL_INPUTS, top_k=2), ref(FILL_INPUTS, top_k=2))
    assert_same(ours(FILL_INPUTS, top_k=3, batch_size=2), ref(FILL_INPUTS, top_k=3))
    r = ours(FILL_INPUTS[0])
    assert list(r[0]) == ["score", "token", "token_str", "sequence"]


def test_fill_mask_targets(ckpt):
    ours, ref = fb_pipe("fill-mask", ckpt["mlm"]), hf_pipe("fill-mask", ckpt["mlm"])
    targets = ["paris", "city", "energy"]
    assert_same(ours(FILL_INPUTS, targets=targets), ref(FILL_INPUTS, targets=targets))
    assert_same(ours(FILL_INPUTS[0], targets="paris"), ref(FILL_INPUTS[0], targets="paris"))
    with pytest.warns(UserWarning, match="does not exist in the model vocabulary"):
        got = ours(FILL_INPUTS[1], targets=["parisian"])
    assert len(got) == 1


def test_fill_mask_without_mask_is_a_clear_error(ckpt):
    fill = fb_pipe("fill-mask", ckpt["mlm"])
    with pytest.raises(ValueError, match=r"no mask token \(\[MASK\]\)"):
        fill("paris is the capital of france.")
    with pytest.raises(ValueError, match="no mask token"):
        fill(["the [MASK] of france", "no mask here"])


def test_long_input_truncated_with_warning_or_error(ckpt):
    fill = fb_pipe("fill-mask", ckpt["mlm"])
    text = "the [MASK] of france. " + "the city is old. " * 40
    with pytest.warns(UserWarning, match="truncated to the model's maximum of 64"):
        out = fill(text)
    assert len(out) == 5
    with pytest.raises(ValueError, match="longer than the model's maximum of 64"):
        fill(text, truncation=False)
    cls = fb_pipe("text-classification", ckpt["seq"])
    with pytest.warns(UserWarning, match="truncated"):
        want = cls(text)
    # truncation asked for (True, a strategy) truncates as asked, without the warning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert fill(text, truncation=True) == out
        assert cls(text, truncation=True) == want
        assert cls(text, truncation="longest_first") == want


def test_warnings_point_at_the_callers_line(ckpt):
    """The pipelines' warnings (an input truncated, a target not in the vocabulary, a deprecated parameter) are
    attributed to the line that called the pipeline, whether it gave one input, a list or a generator (a fixed
    stacklevel pointed into fastbert's own frames: pipelines/base.py)."""
    fill = fb_pipe("fill-mask", ckpt["mlm"])
    cls = fb_pipe("text-classification", ckpt["seq"])
    long = "the [MASK] of france. " + "the city is old. " * 40
    calls = [
        lambda: fill(long),
        lambda: fill([long, long]),
        lambda: list(fill(iter([long]))),
        lambda: fill("the [MASK] of france.", targets=["zzyzxq"]),
        lambda: cls(long),
        lambda: cls("paris", return_all_scores=True),
        lambda: fastbert.pipeline("text-classification", model=ckpt["seq"], return_all_scores=True),
    ]
    for call in calls:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            call()
        assert caught and {w.filename for w in caught} == {__file__}, [
            (w.filename, str(w.message)) for w in caught
        ]


@pytest.mark.parametrize("mode", ["lasttoken", "cls", "mean", "max", "weightedmean"])
def test_sentence_embedding_of_a_padded_input_is_the_unpadded_ones(ckpt, mode):
    """Padding asked for in tokenize_kwargs (padding="max_length") leaves every pooling's vector as it is:
    lasttoken read the row's last position, a [PAD], where sentence-transformers reads the last attended one."""
    pipe = fastbert.pipeline("sentence-embedding", model=ckpt["base"], pooling=mode)
    texts = ["paris is old", "the city of paris is the capital of france"]
    want = pipe(texts, return_tensors=True)
    got = pipe(texts, return_tensors=True, tokenize_kwargs={"padding": "max_length", "max_length": 24})
    torch.testing.assert_close(got, want)


def test_batching_order_and_generators(ckpt):
    fill = fb_pipe("fill-mask", ckpt["mlm"])
    texts = [("the city " * (i % 7)) + "[MASK] is old." for i in range(23)]
    one_by_one = [fill(t) for t in texts]
    batched = fill(texts, batch_size=4)
    assert_same(batched, one_by_one)
    gen = fill((t for t in texts), batch_size=4)
    assert not isinstance(gen, list)
    assert_same(list(gen), one_by_one)

    # a generator is read a window at a time, not all at once
    import fastbert.pipelines.base as base

    read = []

    def source():
        for i, t in enumerate(texts * 20):
            read.append(i)
            yield t

    it = fill(source(), batch_size=2)
    first = next(it)
    assert_same(first, one_by_one[0])
    assert len(read) <= max(2 * base.WINDOW_BATCHES, 64) + 1 < len(texts) * 20


def test_progress_bar_only_when_asked_or_terminal(ckpt, capsys):
    fill = fb_pipe("fill-mask", ckpt["mlm"])
    texts = ["the [MASK] of france."] * 5
    fill(texts, batch_size=2)  # stderr is not a terminal: no bar
    assert "input" not in capsys.readouterr().err
    fill(texts, batch_size=2, progress=True)
    assert "fill-mask" in capsys.readouterr().err
    fill(texts, batch_size=8, progress=True)  # one batch: no bar
    assert "fill-mask" not in capsys.readouterr().err


# =========================================================================== feature extraction


def test_feature_extraction_matches_transformers(ckpt):
    ours, ref = fb_pipe("feature-extraction", ckpt["base"]), hf_pipe("feature-extraction", ckpt["base"])
    texts = ["the sun light", "a", "green leaf of the old river, known as paris"]
    assert_same(ours(texts[0]), ref(texts[0]))
    assert_same(ours(texts), ref(texts))
    t = ours(texts[2], return_tensors=True)
    assert isinstance(t, torch.Tensor) and t.shape == (1, len(ref(texts[2])[0]), 32)
    # any head's folder gives its encoder's states
    enc = fb_pipe("feature-extraction", ckpt["mlm"])("the sun")
    assert np.asarray(enc).shape[-1] == 32


def test_feature_extraction_padded_rows_and_batch_lengths(ckpt):
    """What docs/README-pipelines.md says of feature-extraction (a pinned design, not a transformers match):
    with ``tokenize_kwargs`` padding, the shape is transformers' and the real tokens' rows are transformers',
    the padded rows are zeros on the packed backends (sdpa / triton) and transformers' exact values with
    ``attn_implementation="eager"``; each result has its own length whatever ``batch_size``, while transformers
    (4.57 and 5) pads every result of a batch to the batch's longest when ``batch_size > 1``."""
    text, pad = "the sun light", {"padding": "max_length", "max_length": 12}
    ref = hf_pipe("feature-extraction", ckpt["base"])
    theirs = ref(text, tokenize_kwargs=pad, return_tensors=True)
    real = len(ref(text)[0])
    assert theirs.shape == (1, 12, 32) and real < 12
    assert theirs[0, real:].abs().sum() > 0  # transformers: the model's states at the [PAD] tokens
    # the parity rule's reference: transformers' pipeline in float64, every position (the padded ones too)
    ref64 = hf_pipe("feature-extraction", ckpt["base"], dtype=torch.float64)
    exact = ref64(text, tokenize_kwargs=pad, return_tensors=True)
    assert exact.dtype == torch.float64
    ours = fb_pipe("feature-extraction", ckpt["base"])(text, tokenize_kwargs=pad, return_tensors=True)
    assert ours.shape == theirs.shape
    assert_close(ours[0, :real], theirs[0, :real], exact[0, :real], torch.float32, what="real tokens")
    assert torch.equal(ours[0, real:], torch.zeros_like(ours[0, real:]))  # packed backend: zeros
    eager = fb_pipe("feature-extraction", ckpt["base"], attn_implementation="eager")
    assert_close(
        eager(text, tokenize_kwargs=pad, return_tensors=True), theirs, exact, torch.float32, what="eager"
    )
    # batches: transformers pads each result to its batch's longest; fastbert never does
    texts = ["a", "green leaf of the old river, known as paris"]
    alone = [len(ref(t)[0]) for t in texts]
    assert alone[0] < alone[1]
    assert [len(r[0]) for r in ref(texts, batch_size=2)] == [alone[1], alone[1]]
    assert [len(r[0]) for r in ref(texts, batch_size=1)] == alone
    for batch_size in (1, 2, 32):
        got = fb_pipe("feature-extraction", ckpt["base"])(texts, batch_size=batch_size)
        assert [len(r[0]) for r in got] == alone
        assert_same(got, ref(texts, batch_size=1))


# ======================================================================================= text-classification


@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"top_k": None},
        {"top_k": 2},
        {"top_k": 1},
        {"function_to_apply": "sigmoid"},
        {"function_to_apply": "none", "top_k": None},
    ],
)
def test_text_classification_matches_transformers(ckpt, kw):
    ours, ref = fb_pipe("text-classification", ckpt["seq"]), hf_pipe("text-classification", ckpt["seq"])
    inputs = [
        "the capital of france",
        ["a b c", "paris is a city"],
        {"text": "who lives in paris", "text_pair": "john lives in paris"},
        [{"text": "who", "text_pair": "john"}, {"text": "what is", "text_pair": "the sun"}],
    ]
    for x in inputs:
        assert_same(ours(x, **kw), ref(x, **kw))


@pytest.mark.parametrize("init", [{"top_k": None}, {"top_k": 2}, {"function_to_apply": "none"}])
def test_text_classification_construction_defaults(ckpt, init):
    ours, ref = (
        fb_pipe("text-classification", ckpt["seq"], **init),
        hf_pipe("text-classification", ckpt["seq"], **init),
    )
    for x in ["the capital of france", ["a b c", "paris is a city"], {"text": "who", "text_pair": "john"}]:
        assert_same(ours(x), ref(x))
    assert_same(ours("the sun", top_k=1), ref("the sun", top_k=1))


def test_text_classification_single_label_and_id2label(ckpt):
    ours, ref = fb_pipe("text-classification", ckpt["seq1"]), hf_pipe("text-classification", ckpt["seq1"])
    assert_same(ours(["the sun", "paris"]), ref(["the sun", "paris"]))  # one label: sigmoid
    assert ours("the sun")[0]["label"] == "SCORE"
    assert {r["label"] for r in fb_pipe("text-classification", ckpt["seq"])("x", top_k=None)} == {
        "NEG",
        "POS",
        "NEU",
    }


# ====================================================================================== token-classification


@pytest.mark.parametrize("strategy", ["none", "simple", "first", "average", "max"])
def test_token_classification_matches_transformers(ckpt, strategy):
    ours = fb_pipe("token-classification", ckpt["tok"], aggregation_strategy=strategy)
    ref = hf_pipe("token-classification", ckpt["tok"], aggregation_strategy=strategy)
    texts = ["John lives in New York, works at Googles.", "photosynthesising plants xyzzy", "Où est Zürich?"]
    for x in texts:
        assert_same(ours(x), ref(x))
        assert_same(ours(x, ignore_labels=[]), ref(x, ignore_labels=[]))
    assert_same(ours(texts, ignore_labels=[]), ref(texts, ignore_labels=[]))
    for ent in ours(texts[0], ignore_labels=[]):
        assert texts[0][ent["start"] : ent["end"]].lower().replace(" ", "") == ent["word"].replace(
            "##", ""
        ).replace(" ", "")


def test_token_classification_stride(ckpt):
    text = "John lives in New York and works at the old city of paris. " * 12
    ours = fb_pipe("token-classification", ckpt["tok"], aggregation_strategy="simple")
    ref = hf_pipe("token-classification", ckpt["tok"], aggregation_strategy="simple")
    assert_same(ours(text, stride=16, ignore_labels=[]), ref(text, stride=16, ignore_labels=[]))
    with pytest.raises(ValueError, match="stride"):  # "none" asked for (without a strategy: merged tokens)
        fb_pipe("token-classification", ckpt["tok"])(text, stride=16, aggregation_strategy="none")


# ======================================================================================== question-answering


def _ref_qa(
    model,
    tok,
    question,
    context,
    top_k=1,
    doc_stride=None,
    max_seq_len=None,
    max_answer_len=15,
    handle_impossible_answer=False,
):
    """transformers 4's extractive QA, brute force over spans, with the tokenizer's Encoding word maps."""
    max_seq_len = max_seq_len or min(tok.model_max_length, 384)
    doc_stride = doc_stride if doc_stride is not None else min(max_seq_len // 2, 128)
    enc = tok(
        question,
        context,
        truncation="only_second",
        max_length=max_seq_len,
        stride=doc_stride,
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
        return_token_type_ids=True,
    )
    answers, null = [], 1e6
    for encoding in enc.encodings:
        ids = torch.tensor([encoding.ids])
        with torch.no_grad():
            out = model(
                input_ids=ids,
                attention_mask=torch.ones_like(ids),
                token_type_ids=torch.tensor([encoding.type_ids]),
            )
        ok = torch.tensor(
            [s == 1 or t == tok.cls_token_id for s, t in zip(encoding.sequence_ids, encoding.ids)]
        )
        ps = torch.where(ok, out.start_logits[0], torch.tensor(-10000.0)).softmax(-1)
        pe = torch.where(ok, out.end_logits[0], torch.tensor(-10000.0)).softmax(-1)
        null = min(null, (ps[0] * pe[0]).item())
        spans = []
        ctx = [j for j, s in enumerate(encoding.sequence_ids) if s == 1]
        for s in ctx:
            for e in ctx:
                if s <= e < s + max_answer_len:
                    spans.append(((ps[s] * pe[e]).item(), s, e))
        spans.sort(reverse=True)
        for score, s, e in spans[: top_k * 2 + 10]:  # transformers 4.54+: top_k * 2 + 10 spans a window
            a = encoding.word_to_chars(encoding.token_to_word(s), 1)[0]
            b = encoding.word_to_chars(encoding.token_to_word(e), 1)[1]
            text = context[a:b]
            same = [x for x in answers if x["answer"].lower() == text.lower()]
            if same:
                same[0]["score"] += score
            else:
                answers.append({"score": score, "start": a, "end": b, "answer": text})
    if handle_impossible_answer:
        answers.append({"score": null, "start": 0, "end": 0, "answer": ""})
    answers = sorted(answers, key=lambda x: x["score"], reverse=True)[:top_k]
    return answers[0] if len(answers) == 1 else answers


@pytest.fixture(scope="module")
def qa_ref(ckpt):
    model = transformers.BertForQuestionAnswering.from_pretrained(ckpt["qa"]).eval()
    tok = transformers.AutoTokenizer.from_pretrained(ckpt["qa"])
    return model, tok


QA = [
    {
        "question": "where does john live?",
        "context": "John lives in New York and works at Google. His sister lives in Paris.",
    },
    {
        "question": "what is the capital?",
        "context": "Paris is the capital of France, an old city on a long river.",
    },
]


@pytest.mark.parametrize(
    "kw", [{}, {"top_k": 3}, {"handle_impossible_answer": True}, {"max_answer_len": 2, "top_k": 2}]
)
def test_question_answering_matches_reference(ckpt, qa_ref, kw):
    qa = fb_pipe("question-answering", ckpt["qa"])
    for ex in QA:
        got = qa(question=ex["question"], context=ex["context"], **kw)
        assert_same(got, _ref_qa(*qa_ref, ex["question"], ex["context"], **kw), atol=1e-5)
    many = qa(QA, **kw)
    assert_same(many, [_ref_qa(*qa_ref, ex["question"], ex["context"], **kw) for ex in QA], atol=1e-5)
    one = qa(QA[0], **kw)
    assert_same(one, _ref_qa(*qa_ref, QA[0]["question"], QA[0]["context"], **kw), atol=1e-5)


def test_question_answering_long_context_doc_stride(ckpt, qa_ref):
    qa = fb_pipe("question-answering", ckpt["qa"])
    context = " ".join(
        f"{w} lives in the old city of paris and works at google near the {v} river."
        for w, v in zip(WORDS * 2, WORDS[::-1] * 2)
    )
    q = "where does john work?"
    for kw in [
        {"doc_stride": 16},
        {"doc_stride": 8, "top_k": 4},
        {"doc_stride": 20, "handle_impossible_answer": True, "top_k": 2},
    ]:
        got = qa(question=q, context=context, **kw)
        assert_same(got, _ref_qa(*qa_ref, q, context, **kw), atol=1e-5)
    ans = qa({"question": q, "context": context}, doc_stride=16)
    assert context[ans["start"] : ans["end"]] == ans["answer"]
    assert list(ans) == ["score", "start", "end", "answer"]
    with pytest.raises(ValueError, match="context"):
        qa(question=q, context="")
    # a question or a stride that leaves no room for the context: a clear error, not a tokenizer panic
    with pytest.raises(ValueError, match="leaves? no room for the context"):
        qa(question=q * 12, context=context)
    with pytest.raises(ValueError, match="leave no room for the context"):
        qa(question=q, context=context, doc_stride=60)
    assert qa(question=q * 7, context=context)["answer"]  # the default stride shrinks to fit


# ==================================================================== loaded models, wrong heads, devices


def test_loaded_transformers_objects(ckpt):
    """The pipeline logic on transformers' own model and tokenizer objects (same API by design)."""
    model = transformers.BertForMaskedLM.from_pretrained(ckpt["mlm"]).eval()
    tok = transformers.AutoTokenizer.from_pretrained(ckpt["mlm"])
    ours = fastbert.pipeline("fill-mask", model=model, tokenizer=tok)
    assert ours.device == torch.device("cpu")
    assert_same(ours(FILL_INPUTS), hf_pipe("fill-mask", ckpt["mlm"])(FILL_INPUTS))
    fb_model = fastbert.AutoModelForMaskedLM.from_pretrained(ckpt["mlm"])
    ours = fastbert.pipeline("fill-mask", model=fb_model, tokenizer=ckpt["mlm"])
    assert_same(ours(FILL_INPUTS), hf_pipe("fill-mask", ckpt["mlm"])(FILL_INPUTS))


def test_tokenizer_name_with_kwargs_and_a_wrong_tokenizer(ckpt):
    """transformers 4's ``tokenizer=(name, from_pretrained kwargs)`` loads the tokenizer with them; what is
    no tokenizer is refused at construction (both were kept and failed at the first call: 'tuple' object is
    not callable)."""
    text = "john lives in new york and works at google in paris"
    ours = fastbert.pipeline("ner", model=ckpt["tok"], tokenizer=(ckpt["tok"], {"model_max_length": 8}))
    assert ours.tokenizer.model_max_length == 8 and ours.max_length == 8
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = transformers.pipeline(
            "ner", model=ckpt["tok"], tokenizer=(ckpt["tok"], {"model_max_length": 8}), device=-1
        )
        assert_same(ours(text), ref(text))
    for bad in (3, [ckpt["tok"]], (ckpt["tok"],), (ckpt["tok"], {}, {})):
        with pytest.raises(TypeError, match="tokenizer must be a tokenizer"):
            fastbert.pipeline("ner", model=ckpt["tok"], tokenizer=bad)


def test_wrong_architecture_is_a_clear_error(ckpt):
    with pytest.raises(ValueError, match="BertForSequenceClassification.*no head for fill-mask"):
        fastbert.pipeline("fill-mask", model=ckpt["seq"])
    with pytest.raises(ValueError, match="BertModel.*no head for question-answering"):
        fastbert.pipeline("question-answering", model=ckpt["base"])
    with pytest.raises(ValueError, match="no head for text-classification"):
        fastbert.pipeline(
            "text-classification",
            model=fastbert.AutoModel.from_pretrained(ckpt["base"]),
            tokenizer=ckpt["base"],
        )
    with pytest.raises(ValueError, match="needs a model"):
        fastbert.pipeline("fill-mask")


def test_wrong_architecture_of_a_loaded_model_names_its_family_head():
    """A loaded ModernBERT classifier given to question-answering: the error names ModernBERT's QA class too
    (it named BertForQuestionAnswering only, as if BERT alone could serve the task)."""
    model = fastbert.ModernBertForSequenceClassification(model_helpers.tiny_family_config("modernbert"))
    with pytest.raises(ValueError, match="no head for question-answering.*ModernBertForQuestionAnswering"):
        fastbert.pipeline("question-answering", model=model, tokenizer="unused")


def test_a_module_that_is_no_from_pretrained_model_is_refused_naming_it(ckpt):
    """A module that is no from_pretrained model (a SentenceTransformer, whose forward takes a dict of features)
    is refused when the pipeline is built, naming it and what to pass instead (it was taken, and the first
    call failed in its forward: "missing 1 required positional argument")."""

    class Encoder(torch.nn.Sequential):  # a sentence-transformers object's shape: modules, no config
        def forward(self, input):
            return super().forward(input)

    for task in ("sentence-embedding", "feature-extraction", "fill-mask"):
        with pytest.raises(
            ValueError, match="a Encoder, not a model loaded with from_pretrained.*folder or hub id as model="
        ):
            fastbert.pipeline(task, model=Encoder(torch.nn.Linear(2, 2)), tokenizer=ckpt["mlm"])
    st = pytest.importorskip("sentence_transformers")
    model = st.SentenceTransformer(embedded_model_path(), device="cpu")
    with pytest.raises(ValueError, match="SentenceTransformer, not a model loaded with from_pretrained"):
        fastbert.pipeline("sentence-embedding", model=model)


def test_task_inferred_from_architecture(ckpt):
    assert fastbert.pipeline(model=ckpt["tok"]).task == "token-classification"
    assert fastbert.pipeline(model=embedded_model_path()).task == "sentence-embedding"


def test_int_device_is_the_accelerator_transformers_picks(ckpt):
    """``device=0`` is the first accelerator there is as in transformers 4.57 (cuda:0, else mps:0, else the
    CPU: code from a model card runs on a laptop); it raised torch's AssertionError without CUDA."""
    ref = transformers.pipeline("fill-mask", model=ckpt["mlm"], device=0)
    ours = fastbert.pipeline("fill-mask", model=ckpt["mlm"], device=0)
    assert ours.device == ref.device and ours.model.device == ref.model.device
    assert_same(ours(FILL_INPUTS[0]), ref(FILL_INPUTS[0]))
    loaded = fastbert.AutoModelForMaskedLM.from_pretrained(ckpt["mlm"])
    assert fastbert.pipeline("fill-mask", model=loaded, tokenizer=ckpt["mlm"], device=0).device == ref.device
    assert fastbert.pipeline("fill-mask", model=ckpt["mlm"], device=-1).device == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error of a machine without CUDA")
def test_device_map_ordinal_without_cuda_fails_like_torch(ckpt):
    # device_map=0 is from_pretrained's CUDA device (no fallback): torch's own error here
    with pytest.raises((AssertionError, RuntimeError)) as torch_error:
        torch.empty(1, device="cuda:0")
    with pytest.raises(torch_error.type, match=re.escape(str(torch_error.value))):
        fastbert.pipeline("fill-mask", model=ckpt["mlm"], device_map=0)


def test_device_map_of_one_device_as_from_pretrained(ckpt):
    """A device_map dict of one device ({"": "cpu"}) and the strategies (balanced, sequential) place the
    model as from_pretrained and transformers' pipeline do; they were refused as 'is not a device'."""
    for device_map in ({"": "cpu"}, {"bert": "cpu", "cls": "cpu"}, "balanced", "sequential"):
        if isinstance(device_map, str) and torch.cuda.is_available():
            continue  # (a GPU machine places the strategies on CUDA, as from_pretrained)
        ours = fastbert.pipeline("fill-mask", model=ckpt["mlm"], device_map=device_map)
        assert ours.device == ours.model.device == torch.device("cpu")
        assert_same(ours(FILL_INPUTS[0]), hf_pipe("fill-mask", ckpt["mlm"])(FILL_INPUTS[0]))
    with pytest.raises(ValueError, match="same device"):
        fastbert.pipeline("fill-mask", model=ckpt["mlm"], device_map={"bert": "cpu", "cls": "meta"})


def test_model_kwargs_device_map_places_the_model_for_good(ckpt, monkeypatch):
    """model_kwargs' device_map (no device=) places the model, and the pipeline keeps it there, as transformers'
    pipeline: the pipeline moved it to the CPU afterwards (a device_map="cuda" undone). Off a GPU the move is
    spied on: the model must not be moved after loading."""
    from fastbert.pipelines import factory

    moved = []
    to_device = factory._to_device
    monkeypatch.setattr(factory, "_to_device", lambda m, t: moved.append(t) or to_device(m, t))
    ours = fastbert.pipeline("fill-mask", model=ckpt["mlm"], model_kwargs={"device_map": "cpu"})
    assert moved == [] and ours.device == ours.model.device == torch.device("cpu")
    assert_same(ours(FILL_INPUTS[0]), hf_pipe("fill-mask", ckpt["mlm"])(FILL_INPUTS[0]))
    fastbert.pipeline("fill-mask", model=ckpt["mlm"], device=-1)  # device= still moves it
    assert moved == [torch.device("cpu")]


def test_one_input_tokenized_into_several_sequences_is_named(ckpt):
    """A list as a dict's text, or tokenizer arguments that return a batch, are refused naming that; the
    model refused them ('input_ids must be (batch, sequence_length), got shape (1, 2, 3)') or numpy / torch
    raised 'The truth value of an array ... is ambiguous'."""
    classify = fastbert.pipeline("text-classification", model=ckpt["seq"])
    extract = fastbert.pipeline("feature-extraction", model=ckpt["base"])
    match = "tokenized into several sequences"
    with pytest.raises(ValueError, match=match):
        classify({"text": ["hello world", "the sun"]})
    with pytest.raises(ValueError, match=match):
        extract({"text": ["hello world", "the sun"]})
    for kwargs in ({"return_overflowing_tokens": True}, {"return_tensors": "np"}, {"return_tensors": "pt"}):
        with pytest.raises(ValueError, match=match):
            extract("hello world", tokenize_kwargs=kwargs)
    # pre-tokenized words are one text
    words = {"text": ["hello", "world"], "is_split_into_words": True}
    assert_same(classify(words), hf_pipe("text-classification", ckpt["seq"])(words))


def test_tokenizer_kwargs_that_are_not_a_dict_are_named(ckpt):
    """fill-mask's tokenizer_kwargs and feature-extraction's tokenize_kwargs are dicts: anything else is a
    TypeError naming them (dict() raised 'dictionary update sequence element #0 has length 1; 2 is required')."""
    fill = fastbert.pipeline("fill-mask", model=ckpt["mlm"])
    extract = fastbert.pipeline("feature-extraction", model=ckpt["base"])
    for bad in ("truncation", [("truncation", True)]):
        with pytest.raises(TypeError, match="tokenizer_kwargs must be a dict"):
            fill(FILL_INPUTS[0], tokenizer_kwargs=bad)
        with pytest.raises(TypeError, match="tokenize_kwargs must be a dict"):
            extract("hello world", tokenize_kwargs=bad)
    with pytest.raises(TypeError, match="tokenize_kwargs must be a dict"):
        fastbert.pipeline("feature-extraction", model=ckpt["base"], tokenize_kwargs="truncation")


def test_fill_mask_targets_that_are_not_strings_are_named(ckpt):
    """targets are tokens (str): an int among them raised the tokenizer's 'text input must be of type `str`',
    a None 'You need to specify either `text` or `text_target`', an int alone 'object is not iterable'."""
    fill = fastbert.pipeline("fill-mask", model=ckpt["mlm"])
    for bad in ([1, 2], ["paris", None], 5):
        with pytest.raises(ValueError, match="targets must be a token"):
            fill(FILL_INPUTS[0], targets=bad)
    assert_same(
        fill(FILL_INPUTS[0], targets=("paris", "city")),
        hf_pipe("fill-mask", ckpt["mlm"])(FILL_INPUTS[0], targets=["paris", "city"]),
    )


def test_dtype_and_attn_implementation(ckpt):
    fill = fastbert.pipeline(
        "fill-mask", model=ckpt["mlm"], torch_dtype="bfloat16", attn_implementation="sdpa", device=-1
    )
    assert fill.model.dtype == torch.bfloat16
    ref = hf_pipe("fill-mask", ckpt["mlm"])(FILL_INPUTS[0])
    got = fill(FILL_INPUTS[0])
    assert [r["token_str"] for r in got][:1] == [r["token_str"] for r in ref][:1]
    assert abs(got[0]["score"] - ref[0]["score"]) < 0.05
    with pytest.raises(ValueError, match="unknown dtype"):
        fastbert.pipeline("fill-mask", model=ckpt["mlm"], torch_dtype="int3")


def test_dtype_given_twice_as_transformers(ckpt):
    """dtype and torch_dtype both given: dtype is kept, as transformers (torch_dtype was); one of them, or
    device_map, given again in model_kwargs is refused, as transformers (model_kwargs' was used silently)."""
    both = {"dtype": torch.bfloat16, "torch_dtype": torch.float16}
    assert fastbert.pipeline("ner", model=ckpt["tok"], **both).dtype == torch.bfloat16
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert transformers.pipeline("ner", model=ckpt["tok"], **both).dtype == torch.bfloat16
    for kw in (
        {"torch_dtype": torch.bfloat16, "model_kwargs": {"torch_dtype": torch.float16}},
        {"dtype": torch.bfloat16, "model_kwargs": {"torch_dtype": torch.float16}},
        {"dtype": "bfloat16", "model_kwargs": {"dtype": "float16"}},
        {"device_map": "cpu", "model_kwargs": {"device_map": "cpu"}},
    ):
        with pytest.raises(ValueError, match="You cannot use both"):
            transformers.pipeline("ner", model=ckpt["tok"], **kw)
        with pytest.raises(ValueError, match="You cannot use both `pipeline.*model_kwargs"):
            fastbert.pipeline("ner", model=ckpt["tok"], **kw)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("attn", ["sdpa", "triton"])
def test_fill_mask_fp16_cuda(ckpt, attn):
    fill = fastbert.pipeline(
        "fill-mask", model=ckpt["mlm"], torch_dtype=torch.float16, device=0, attn_implementation=attn
    )
    assert fill.model.device.type == "cuda"
    ref = hf_pipe("fill-mask", ckpt["mlm"])
    assert_same(fill(FILL_INPUTS, batch_size=2), ref(FILL_INPUTS), atol=5e-3)


# ====================================================================================== real models


def test_minilm_sentence_embedding_matches_sentence_transformers():
    st = pytest.importorskip("sentence_transformers")
    texts = [
        "A man is eating food.",
        "Plants create energy through photosynthesis.",
        "hi",
        "The quick brown fox " * 10,
    ]
    ref = st.SentenceTransformer(embedded_model_path(), device="cpu").encode(texts, convert_to_numpy=True)
    emb = fastbert.pipeline("sentence-embedding")  # the MiniLM that ships offline
    got = np.asarray(emb(texts, batch_size=3))
    assert got.shape == ref.shape == (4, 384)
    np.testing.assert_allclose(got, ref, atol=2e-5)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)  # modules.json: Normalize
    one = emb(texts[0])
    assert isinstance(one, list) and len(one) == 384
    t = emb(texts, return_tensors=True)
    assert isinstance(t, torch.Tensor) and t.shape == (4, 384)
    # pooling override: CLS, not normalized
    cls = fastbert.pipeline("sentence-embedding", pooling="cls", normalize=False)(texts[1])
    fe = fastbert.pipeline("feature-extraction")(texts[1])
    np.testing.assert_allclose(cls, fe[0][0], atol=1e-5)


def test_minilm_long_input_truncated_like_sentence_transformers():
    st = pytest.importorskip("sentence_transformers")
    text = (
        "plants create energy through photosynthesis " * 60
    )  # > 256 tokens: sentence_bert_config's max_seq_length
    ref = st.SentenceTransformer(embedded_model_path(), device="cpu").encode([text], convert_to_numpy=True)
    with pytest.warns(UserWarning, match="truncated to the model's maximum of 256"):
        got = fastbert.pipeline("sentence-embedding")(text)
    np.testing.assert_allclose(np.asarray(got)[None], ref, atol=2e-5)


def test_minilm_feature_extraction_matches_transformers():
    ours = fastbert.pipeline("feature-extraction")
    ref = hf_pipe("feature-extraction", embedded_model_path())
    text = "Plants create energy through a process known as photosynthesis."
    np.testing.assert_allclose(np.asarray(ours(text)), np.asarray(ref(text)), atol=1e-4)


@pytest.fixture(scope="module")
def antiberty_folder(tmp_path_factory):
    return model_helpers.antiberty_folder(tmp_path_factory.mktemp("antiberty"))


def test_antiberty_fill_mask_matches_transformers(antiberty_folder):
    model = transformers.BertForMaskedLM.from_pretrained(antiberty_folder).eval()
    tok = transformers.AutoTokenizer.from_pretrained(antiberty_folder)
    ref = transformers.pipeline("fill-mask", model=model, tokenizer=tok, device=-1)
    ours = fastbert.pipeline("fill-mask", model=antiberty_folder)
    seqs = [
        "E V Q L [MASK] E S G G G L V Q P G G S L R L S C A A S",
        "Q V Q L V Q S G A E V K K P G [MASK] S V K V S C K [MASK] S",
    ]
    assert_same(ours(seqs, top_k=3), ref(seqs, top_k=3), atol=1e-4)
    assert ours(seqs[0])[0]["token_str"] in list("ACDEFGHIKLMNPQRSTVWY")


def test_folder_max_seq_length_above_the_position_table_is_capped(tmp_path):
    """sentence_bert_config.json's max_seq_length above the model's position table (sentence-transformers
    loads such a folder and encodes its short texts): the pipeline runs with the table's length as its
    maximum instead of refusing the folder with a message about a max_length nobody passed."""
    import json
    import shutil

    folder = tmp_path / "minilm"
    shutil.copytree(embedded_model_path(), folder)
    cfg = json.loads((folder / "sentence_bert_config.json").read_text())
    cfg["max_seq_length"] = 4096
    (folder / "sentence_bert_config.json").write_text(json.dumps(cfg))
    positions = json.loads((folder / "config.json").read_text())["max_position_embeddings"]
    emb = fastbert.pipeline("sentence-embedding", model=str(folder))
    assert emb.max_length == positions
    ref = fastbert.pipeline("sentence-embedding")
    text = "Plants create energy through a process known as photosynthesis."
    np.testing.assert_allclose(np.asarray(emb(text)), np.asarray(ref(text)), atol=1e-6)
    with pytest.raises(ValueError, match="max_length=4096 is more than"):  # one the caller passes: refused
        fastbert.pipeline("sentence-embedding", model=str(folder), max_length=4096)


@pytest.mark.parametrize("older", [False, True], ids=["top", "0_Transformer"])
def test_task_of_a_sentence_transformers_hub_id(tmp_path, monkeypatch, older):
    """``pipeline(model="org/name")`` of a sentence-transformers repository is a sentence-embedding pipeline,
    as its local folder: an older one (config.json in 0_Transformer only) failed ("no config.json"), a newer
    one was a feature-extraction pipeline, which returns every token's vector."""
    import shutil
    import uuid

    from model_helpers import fake_hub_download, old_layout

    source = embedded_model_path()
    folder = tmp_path / "repo"
    shutil.copytree(source, folder)
    if older:
        old_layout(folder)
    repo = f"someone/minilm-{uuid.uuid4().hex[:8]}"
    fake_hub_download(monkeypatch, {repo: str(folder)})
    pipe = fastbert.pipeline(model=repo)
    assert pipe.task == "sentence-embedding"
    texts = ["the cat sat", "a blue sky"]
    want = fastbert.pipeline("sentence-embedding", model=source)(texts, return_tensors=True)
    torch.testing.assert_close(pipe(texts, return_tensors=True), want)
