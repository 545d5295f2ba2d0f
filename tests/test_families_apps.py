"""The apps find a family through the model_type registry: pipelines, ``fastbert check --model`` and the
server's model description on ELECTRA folders (WordPiece tokenizers, which fastbert's AutoTokenizer loads),
the question-answering pipeline on an XLM-RoBERTa folder (a Unigram tokenizer without token types), and one
clear refusal of a model_type fastbert does not have."""

import subprocess
import sys

import pytest
import torch
from checkpoint_helpers import wordpiece_vocab
from model_helpers import perturb_norms_and_biases
from tokenizer_family_helpers import save_family_tokenizers

import fastbert
from fastbert.core.tolerances import assert_close

transformers = pytest.importorskip("transformers")

TINY = dict(
    embedding_size=20,
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=4,
    intermediate_size=37,
    max_position_embeddings=64,
)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """ELECTRA generator, classifier and discriminator folders, each with a WordPiece tokenizer."""
    root = tmp_path_factory.mktemp("electra-apps")
    vocab = wordpiece_vocab()
    (root / "vocab.txt").write_text("\n".join(vocab) + "\n")
    tok = transformers.BertTokenizerFast.from_pretrained(str(root), model_max_length=64)
    out = {}
    for i, (name, cls, extra) in enumerate(
        [
            ("mlm", "ElectraForMaskedLM", {}),
            ("cls", "ElectraForSequenceClassification", {"id2label": {0: "neg", 1: "pos"}}),
            ("disc", "ElectraForPreTraining", {}),
        ]
    ):
        torch.manual_seed(i)
        if "id2label" in extra:
            extra = {**extra, "label2id": {v: k for k, v in extra["id2label"].items()}}
        config = transformers.ElectraConfig(vocab_size=len(vocab), **TINY, **extra)
        model = perturb_norms_and_biases(getattr(transformers, cls)(config).eval())
        path = root / name
        model.save_pretrained(path)
        tok.save_pretrained(path)
        out[name] = str(path)
    return out


def scores(answers):
    """A pipeline's scores as one float64 tensor, for the parity rule (fastbert.core.tolerances)."""
    return torch.tensor([r["score"] for r in answers], dtype=torch.float64)


def test_fill_mask_pipeline_on_an_electra_generator(folders):
    ours = fastbert.pipeline("fill-mask", model=folders["mlm"], top_k=3)
    theirs = transformers.pipeline("fill-mask", model=folders["mlm"], device=-1, top_k=3)
    assert type(ours.model) is fastbert.ElectraForMaskedLM
    ref = transformers.pipeline("fill-mask", model=folders["mlm"], dtype=torch.float64, device=-1, top_k=3)
    text = "the [MASK] of france is paris."
    a, b, c = ours(text), theirs(text), ref(text)  # c: the rule's reference
    assert [r["token"] for r in a] == [r["token"] for r in b] == [r["token"] for r in c]
    assert_close(scores(a), scores(b), scores(c), torch.float32, what="fill-mask scores")


def test_text_classification_pipeline_and_task_inference(folders):
    ours = fastbert.pipeline(model=folders["cls"])  # the task from the architecture
    theirs = transformers.pipeline("text-classification", model=folders["cls"], device=-1)
    assert type(ours.model) is fastbert.ElectraForSequenceClassification
    texts = ["paris is the capital of france.", "john works at google"]
    # the rule's reference, in float64 throughout: transformers' pipeline casts the logits to float32 before
    # its softmax (TextClassificationPipeline.postprocess), so its float64 run is not one
    hf = transformers.AutoModelForSequenceClassification.from_pretrained(folders["cls"], dtype=torch.float64)
    tok = transformers.AutoTokenizer.from_pretrained(folders["cls"])
    with torch.no_grad():
        probs = [hf.eval()(**tok(t, return_tensors="pt")).logits[0].softmax(-1) for t in texts]
    c = [{"label": hf.config.id2label[int(p.argmax())], "score": p.max().item()} for p in probs]
    a, b = ours(texts), theirs(texts)
    assert [x["label"] for x in a] == [y["label"] for y in b] == [z["label"] for z in c]
    assert_close(scores(a), scores(b), scores(c), torch.float32, what="text-classification scores")
    with pytest.raises(ValueError, match="cannot tell the task"):
        fastbert.pipeline(model=folders["disc"])  # a discriminator serves no pipeline task by default


def test_question_answering_pipeline_over_several_spans_of_an_xlm_roberta(tmp_path):
    """XLM-R's tokenizer has no token types, yet the tokenizers library gives the overflowing spans of a pair
    type ids of 1: the pipeline passes the model only the tokenizer's model_input_names (as transformers'), so
    a model of type_vocab_size 1 answers over a context longer than one span (it was refused by the model's
    token type check)."""
    folder = save_family_tokenizers(str(tmp_path))["xlm-roberta"]
    tok = fastbert.AutoTokenizer.from_pretrained(folder)
    assert "token_type_ids" not in tok.model_input_names
    torch.manual_seed(0)
    widths = {k: v for k, v in TINY.items() if k != "embedding_size"}  # ELECTRA's
    config = transformers.XLMRobertaConfig(vocab_size=len(tok), **widths, type_vocab_size=1, num_labels=2)
    model = perturb_norms_and_biases(transformers.XLMRobertaForQuestionAnswering(config).eval())
    model.save_pretrained(folder)
    qa = fastbert.pipeline("question-answering", model=folder)
    context = (
        "the capital of france is paris. it is big and old and has many people living in it for a long time."
    )
    spans = tok(
        "what is the capital?", context, truncation="only_second", max_length=24, stride=4,
        return_overflowing_tokens=True, return_token_type_ids=True,
    )  # fmt: skip
    assert len(spans["input_ids"]) > 1 and any(1 in t for t in spans["token_type_ids"])  # the library's ids
    answers = qa(question="what is the capital?", context=context, max_seq_len=24, doc_stride=4, top_k=3)
    assert len(answers) == 3
    for a in answers:
        assert a["answer"] == context[a["start"] : a["end"]] and a["answer"] and 0 < a["score"] <= 1


def test_check_on_an_electra_folder(folders):
    from fastbert import check

    rows = check.run_check(model=folders["disc"], dtypes=("fp32",), backends=("eager", "sdpa"))
    assert {r.provider for r in rows} >= {"fastbert eager", "fastbert sdpa", "transformers eager"}
    assert all(r.ok for r in rows)
    judged = [r for r in rows if r.tolerance is not None]
    # a real error, judged by the parity rule (all ok, above): a fixed bound would not hold on every device
    assert len(judged) == 2 and all(0 < r.max_err for r in judged)


def test_serve_describes_an_electra_classifier(folders):
    from fastbert.serve.engine import describe_model
    from fastbert.serve.options import ServeOptions

    spec = describe_model(ServeOptions(model=folders["cls"]))
    assert spec.architecture == "ElectraForSequenceClassification"
    assert describe_model(ServeOptions(model=folders["disc"], pooling="cls")).architecture == "ElectraModel"
    # as TEI: a model whose type is not a BERT variant needs a pooling config or --pooling
    with pytest.raises(ValueError, match="pass --pooling"):
        describe_model(ServeOptions(model=folders["disc"]))


def test_check_cli_refuses_another_model_type_in_one_line(tmp_path):
    transformers.AlbertConfig(vocab_size=99, hidden_size=32, num_attention_heads=2).save_pretrained(tmp_path)
    proc = subprocess.run(
        [sys.executable, "-m", "fastbert", "check", "--model", str(tmp_path), "--dtypes", "fp32"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "model_type 'albert' is not supported by fastbert" in lines[0]
    assert "bert, camembert, distilbert, electra, modernbert, mpnet, roberta, xlm-roberta" in lines[0]
