"""``fastbert.accelerate`` on sentence-transformers models built on the other families (RoBERTa, XLM-RoBERTa).

Tiny random models saved by transformers, with a byte-level BPE tokenizer trained here on a few sentences
(``<s>``/``<pad>``/``</s>`` as RoBERTa numbers them), wrapped by sentence-transformers' ``Transformer`` +
``Pooling`` (no hub). Parity by ``fastbert.core.tolerances``: transformers in float64 is the reference, its fp32
output PyTorch's own error.
"""

import warnings

import pytest
import torch
from model_helpers import perturb_norms_and_biases, splade_modules

import fastbert

transformers = pytest.importorskip("transformers")
pytest.importorskip("sentence_transformers")
from sentence_transformers import CrossEncoder, SentenceTransformer  # noqa: E402
from sentence_transformers.sentence_transformer.modules import Pooling, Transformer  # noqa: E402

from fastbert.accelerate import AccelerateWarning  # noqa: E402
from fastbert.core.tolerances import assert_close  # noqa: E402

SENTENCES = [
    "A man is eating food.",
    "Paris",
    "The quick brown fox jumps over the lazy dog, and then it runs away.",
    "",
    "Berlin has museums and many people live there.",
]
PAIRS = [
    ("How many people live in Berlin?", "Berlin has a population of three million."),
    ("How many people live in Berlin?", "Berlin is well known for its museums."),
    ("", "an empty query"),
]
CONFIG = dict(
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=4,
    intermediate_size=37,
    max_position_embeddings=40,
    type_vocab_size=1,
)


def bpe_tokenizer():
    from tokenizers import ByteLevelBPETokenizer, processors

    corpus = SENTENCES + [" ".join(p) for p in PAIRS] + ["The capital of France is Paris."]
    tok = ByteLevelBPETokenizer()
    tok.train_from_iterator(
        corpus * 3, vocab_size=300, special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    )
    tok._tokenizer.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0))
    specials = dict(bos_token="<s>", eos_token="</s>", sep_token="</s>", cls_token="<s>", unk_token="<unk>")
    return transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok._tokenizer,
        pad_token="<pad>",
        mask_token="<mask>",
        model_max_length=38,
        **specials,
    )


def saved(tmp_path, model_type, task, **config):
    prefix = {"roberta": "Roberta", "xlm-roberta": "XLMRoberta"}[model_type]
    tokenizer = bpe_tokenizer()
    hf_config = getattr(transformers, prefix + "Config")(vocab_size=len(tokenizer), **CONFIG, **config)
    torch.manual_seed(5)
    model = getattr(transformers, prefix + task)(hf_config).eval()
    perturb_norms_and_biases(model)
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    return str(tmp_path)


def accelerate_quietly(obj):
    with warnings.catch_warnings():
        warnings.simplefilter("error", AccelerateWarning)
        return fastbert.accelerate(obj)


@pytest.mark.parametrize("model_type", ["roberta", "xlm-roberta"])
def test_sentence_transformer(tmp_path, model_type):
    path = saved(tmp_path, model_type, "Model")

    def build():
        transformer = Transformer(path, max_seq_length=38)
        return SentenceTransformer(modules=[transformer, Pooling(32, "mean")], device="cpu")

    plain, fast = build(), accelerate_quietly(build())
    assert type(fast[0].auto_model).__name__ == type(plain[0].auto_model).__name__
    assert type(fast[0].auto_model).__module__.startswith("fastbert.models.")
    ref = build().to(torch.float64).encode(SENTENCES, convert_to_tensor=True)
    ours = fast.encode(SENTENCES, batch_size=4, convert_to_tensor=True)
    theirs = plain.encode(SENTENCES, batch_size=4, convert_to_tensor=True)
    assert_close(ours, theirs, ref, torch.float32, what="sentence_embedding")


def test_cross_encoder_xlm_roberta(tmp_path):
    path = saved(tmp_path, "xlm-roberta", "ForSequenceClassification", num_labels=1)
    plain = CrossEncoder(path, device="cpu", max_length=38)
    ref = CrossEncoder(path, device="cpu", max_length=38).to(torch.float64)
    fast = accelerate_quietly(CrossEncoder(path, device="cpu", max_length=38))
    assert type(fast.model) is fastbert.XLMRobertaForSequenceClassification
    ours = fast.predict(PAIRS, batch_size=2, convert_to_tensor=True)
    theirs = plain.predict(PAIRS, batch_size=2, convert_to_tensor=True)
    assert_close(ours, theirs, ref.predict(PAIRS, batch_size=2, convert_to_tensor=True), torch.float32)


@pytest.mark.parametrize("model_type", ["roberta", "xlm-roberta"])
def test_sparse_encoder_splade_on_a_family(tmp_path, model_type):
    """A SPLADE SparseEncoder whose masked-LM backbone is another family's: swapped, same sparse vectors."""
    import sentence_transformers as st

    backbone, SpladePooling = splade_modules()

    path = saved(tmp_path, model_type, "ForMaskedLM")

    def splade():
        return st.SparseEncoder(modules=[backbone(path), SpladePooling("max")], device="cpu")

    plain, ref = splade(), splade().to(torch.float64)
    fast = accelerate_quietly(splade())
    assert type(fast[0].auto_model).__module__.startswith("fastbert.")
    assert type(fast[0].auto_model).__name__.endswith("ForMaskedLM")
    ours, theirs, r = (m.encode(SENTENCES, convert_to_tensor=True).to_dense() for m in (fast, plain, ref))
    assert_close(ours, theirs, r, torch.float32, what=f"{model_type} splade")


@pytest.mark.parametrize(
    "make, edit, said",
    [
        (
            lambda: transformers.DistilBertForMaskedLM(
                transformers.DistilBertConfig(vocab_size=50, dim=16, n_layers=2, n_heads=2, hidden_dim=32)
            ),
            lambda m: setattr(m.distilbert.transformer.layer[1].ffn, "activation", torch.nn.ReLU()),
            "distilbert.transformer.layer.1.ffn.activation is ReLU(), not the config's activation 'gelu'",
        ),
        (
            lambda: transformers.DistilBertForMaskedLM(
                transformers.DistilBertConfig(vocab_size=50, dim=16, n_layers=2, n_heads=2, hidden_dim=32)
            ),
            lambda m: setattr(m, "activation", torch.nn.SiLU()),
            "the model.activation is SiLU(), not the config's activation 'gelu'",
        ),
        (
            lambda: transformers.ElectraForSequenceClassification(_electra_config()),
            lambda m: setattr(m.classifier, "activation", torch.nn.Tanh()),
            "classifier.activation is Tanh(), not transformers' 'gelu'",
        ),
        (
            lambda: transformers.ElectraForPreTraining(_electra_config()),
            lambda m: setattr(m.discriminator_predictions, "activation", torch.nn.ReLU()),
            "discriminator_predictions.activation is ReLU(), not the config's hidden_act 'gelu'",
        ),
        # the config edited after building: transformers' modules keep what they were built with
        (
            lambda: transformers.RobertaModel(
                transformers.RobertaConfig(
                    vocab_size=50,
                    hidden_size=16,
                    num_hidden_layers=2,
                    num_attention_heads=2,
                    intermediate_size=32,
                )
            ),
            lambda m: setattr(m.config, "pad_token_id", 3),
            "embeddings.padding_idx is 1, not the config's pad_token_id 3",
        ),
        (
            lambda: transformers.DistilBertModel(
                transformers.DistilBertConfig(vocab_size=50, dim=16, n_layers=2, n_heads=2, hidden_dim=32)
            ),
            lambda m: setattr(m.config, "n_heads", 4),
            "transformer.layer.0.attention.n_heads is 2, not the config's 4 heads",
        ),
    ],
)
def test_accelerate_leaves_a_distilbert_or_electra_activation_module_the_config_does_not_say(
    make, edit, said
):
    """DistilBERT's and ELECTRA's ``activation`` modules swapped by hand: fastbert, built from the config,
    computed the config's activation (or ELECTRA's fixed GELU) silently; now the model is left as it is with
    one warning naming the module, as for BERT's and ModernBERT's activation modules. So are RoBERTa's position
    padding index and the heads when the config was edited after building (other numbers, silently, before)."""
    from model_helpers import accelerate_warnings

    torch.manual_seed(0)
    model = make().eval()
    edit(model)
    out, caught = accelerate_warnings(model)
    assert out is model and len(caught) == 1 and said in str(caught[0].message), [
        str(w.message) for w in caught
    ]
    torch.manual_seed(0)
    unedited, caught = accelerate_warnings(make().eval())
    assert unedited is not model and type(unedited).__module__.startswith("fastbert") and not caught


def _electra_config():
    return transformers.ElectraConfig(
        vocab_size=50,
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        embedding_size=8,
    )
