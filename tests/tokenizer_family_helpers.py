"""Tiny tokenizer folders of every encoder family, as a hub folder holds them: tokenizers trained with the
``tokenizers`` library on tests/data/sentences.txt (byte-level BPE, Unigram, WordPiece), wrapped in transformers'
fast tokenizer of the family and written by its ``save_pretrained``, with a config.json naming the model type.

The Unigram folders carry a SentencePiece ``Precompiled`` normalizer (the form XLM-R's tokenizer.json has): its
charsmap below was compiled once by sentencepiece 0.2 from eight custom rules (① → 1, ２ → 2, ﬁ → fi, NBSP → space,
… → ..., Ｆ → F, ｅ → e), so that no test needs sentencepiece.
"""

from __future__ import annotations

import base64
import json
import os

from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

HERE = os.path.dirname(os.path.abspath(__file__))

TINY_CHARSMAP = base64.b64decode(
    "AAQAAAAMAwDCjAIAoAUAAAAAAICAnAIApg0AAAIAAICgPQAABgAAgKwIAgCBBQAADgAAgJIFAAAIAACACgAAgIV9AAAMAACAEAAAABMAAAAS"
    "AAAAFQAAAJHIAgAXAAAAFgAAAL1IAgC8HAIAGwAAABoAAAAdAAAAHAAAAB8AAAAeAAAAIQAAAOKUAgAjAAAAIgAAACUAAAAkAAAAJwAAACYA"
    "AAApAAAAKAAAACsAAAAqAAAA7yQCACwAAAAvAAAALgAAADEAAAAwAAAAMwAAADIAAAA1AAAANAAAADcAAAA2AAAAptkAADgAAAA7AAAAOgAA"
    "AD0AAAA8AAAAPwAAAD4AAABBAAAAQAAAAEMAAABCAAAARQAAAEQAAABHAAAARgAAAEkAAABIAAAASwAAAEoAAABNAAAATAAAAE8AAABOAAAA"
    "UQAAAFAAAABTAAAAUgAAAFUAAABUAAAAVwAAAFYAAABZAAAAWAAAAFsAAABaAAAAXQAAAFwAAABfAAAAXgAAAGEAAABgAAAAYwAAAGIAAABl"
    "AAAAZAAAAGcAAABmAAAAaQAAAGgAAABrAAAAagAAAG0AAABsAAAAbwAAAG4AAABxAAAAcAAAAHMAAAByAAAAdQAAAHQAAAB3AAAAdgAAAHkA"
    "AAB4AAAAewAAAHoAAAB9AAAAfAAAAH8AAAB+AAAAgQAAAIAAAACDAAAAggAAAIUAAACEAAAAhwAAAIYAAACJAAAAiAAAAIsAAACKAAAAjQAA"
    "AIwAAACPAAAAjgAAAJEAAACQAAAAkwAAAJIAAACVAAAAlAAAAJcAAACWAAAAmQAAAJgAAACbAAAAmgAAAJ0AAACcAAAAnwAAAJ4AAAChAAAA"
    "oAAAAKMAAACiAAAApQAAAKQAAACnAAAApgAAAKkAAACoAAAAqwAAAKoAAACtAAAArAAAAK8AAACuAAAAsQAAALAAAACzAAAAsgAAALUAAAC0"
    "AAAAtwAAALYAAAC5AAAAuAAAALsAAAC6AAAAvQAAALwAAAC/AAAAvgAAAMEAAADAAAAAwwAAAMIAAADFAAAAxAAAAMcAAADGAAAAyQAAAMgA"
    "AADLAAAAygAAAM0AAADMAAAAzwAAAM4AAADRAAAA0AAAANMAAADSAAAA1QAAANQAAADXAAAA1gAAANkAAADYAAAA2wAAANoAAADdAAAA3AAA"
    "AN8AAADeAAAA4QAAAOAAAADjAAAA4gAAAOUAAADkAAAA5wAAAOYAAADpAAAA6AAAAOsAAADqAAAA7QAAAOwAAADvAAAA7gAAAPEAAADwAAAA"
    "8wAAAPIAAAD1AAAA9AAAAPcAAAD2AAAA+QAAAPgAAAD7AAAA+gAAAP0AAAD8AAAA/wAAAP4AAAAgAC4uLgAxADIARgBlAGZpAA=="
)

# family → (model_type, transformers' fast class name)
FAMILIES = {
    "roberta": ("roberta", "RobertaTokenizerFast"),
    "xlm-roberta": ("xlm-roberta", "XLMRobertaTokenizerFast"),
    "camembert": ("camembert", "CamembertTokenizerFast"),
    "distilbert": ("distilbert", "DistilBertTokenizerFast"),
    "electra": ("electra", "ElectraTokenizerFast"),
    "mpnet": ("mpnet", "MPNetTokenizerFast"),
}
EXTRA_TEXTS = [
    "Crème brûlée à la carte, naïve façade, Ångström, São Paulo",
    "北京是中国的首都。我爱自然语言处理",
    "日本語のテキストと한국어 텍스트",
    "emoji 😀🎉👍🏽 and ❤️ and 🇫🇷",
]
ROBERTA_SPECIALS = ["<s>", "<pad>", "</s>", "<unk>"]
MASK = AddedToken("<mask>", lstrip=True, rstrip=False, normalized=False, special=True)


def corpus() -> list[str]:
    with open(os.path.join(HERE, "data", "sentences.txt"), encoding="utf-8") as f:
        lines = f.read().splitlines()
    return lines + EXTRA_TEXTS * 3


def train_byte_level_bpe(lines: list[str], vocab_size: int = 700) -> Tokenizer:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=ROBERTA_SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(lines, trainer)
    tok.add_special_tokens([MASK])
    return tok


def train_unigram(lines: list[str], vocab_size: int = 600) -> Tokenizer:
    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.Precompiled(TINY_CHARSMAP)
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    trainer = trainers.UnigramTrainer(
        vocab_size=vocab_size, special_tokens=ROBERTA_SPECIALS, unk_token="<unk>", show_progress=False
    )
    tok.train_from_iterator(lines, trainer)
    tok.add_special_tokens([MASK])
    return tok


def train_wordpiece(lines: list[str], specials: list[str], vocab_size: int = 600) -> Tokenizer:
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=specials, show_progress=False)
    tok.train_from_iterator(lines, trainer)
    return tok


def _write_json(path: str, data: dict) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f)


TRAINED = os.path.join(HERE, "fixtures", "family_tokenizers")


def train_backends() -> dict[str, Tokenizer]:
    """The four tokenizers trained on :func:`corpus`. The tokenizers library's Unigram and WordPiece trainers
    break ties between equally frequent pieces in hash order, so each process trains another vocabulary:
    the tests read the ones trained once and committed (:func:`trained_backends`)."""
    lines = corpus()
    mpnet_wp = train_wordpiece(lines, ["<s>", "<pad>", "</s>", "<unk>", "[UNK]"])
    mpnet_wp.add_special_tokens([MASK])
    return {
        "byte_bpe": train_byte_level_bpe(lines),
        "unigram": train_unigram(lines),
        "bert_wordpiece": train_wordpiece(lines, ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]),
        "mpnet_wordpiece": mpnet_wp,
    }


def trained_backends() -> dict[str, Tokenizer]:
    """:func:`train_backends`' tokenizers as committed in tests/fixtures/family_tokenizers (the same in every
    process; ``python3 tests/tokenizer_family_helpers.py`` trains and writes them again)."""
    names = ("byte_bpe", "unigram", "bert_wordpiece", "mpnet_wordpiece")
    return {name: Tokenizer.from_file(os.path.join(TRAINED, f"{name}.json")) for name in names}


def save_family_tokenizers(root: str, model_max_length: int = 40) -> dict[str, str]:
    """One folder per family under ``root`` (``{family: path}``), plus ``roberta-slow`` (vocab.json + merges.txt
    only, as RoBERTa's slow tokenizer files)."""
    import transformers

    trained = trained_backends()
    bpe, unigram, bert_wp, mpnet_wp = (
        trained[k] for k in ("byte_bpe", "unigram", "bert_wordpiece", "mpnet_wordpiece")
    )
    backends = {
        "roberta": bpe,
        "xlm-roberta": unigram,
        "camembert": unigram,
        "distilbert": bert_wp,
        "electra": bert_wp,
        "mpnet": mpnet_wp,
    }
    out = {}
    for family, (model_type, class_name) in FAMILIES.items():
        folder = os.path.join(root, family)
        cls = getattr(transformers, class_name)
        cls(tokenizer_object=backends[family], model_max_length=model_max_length).save_pretrained(folder)
        _write_json(os.path.join(folder, "config.json"), {"model_type": model_type})
        out[family] = folder
    # transformers 5 saves ELECTRA's as "BertTokenizer"; hub folders say "ElectraTokenizer"
    config_path = os.path.join(out["electra"], "tokenizer_config.json")
    with open(config_path, encoding="utf-8") as f:
        config = json.load(f)
    _write_json(config_path, {**config, "tokenizer_class": "ElectraTokenizer"})

    slow = os.path.join(root, "roberta-slow")
    os.makedirs(slow)
    bpe.model.save(slow)  # vocab.json + merges.txt
    _write_json(os.path.join(slow, "config.json"), {"model_type": "roberta"})
    out["roberta-slow"] = slow
    return out


def modernbert_tokenizer_folder(path: str, model_max_length: int | None = None) -> str:
    """A ModernBERT-style tokenizer folder as the hub's: byte-level BPE, its own [CLS] A [SEP] B [SEP]
    template, saved by transformers' generic fast tokenizer (``tokenizer_class: PreTrainedTokenizerFast``)."""
    import transformers
    from tokenizers import processors

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=600,
        special_tokens=["[UNK]", "[CLS]", "[SEP]", "[PAD]"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus(), trainer)
    tok.add_special_tokens([AddedToken("[MASK]", lstrip=True, rstrip=False, normalized=False, special=True)])
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS]:0 $A:0 [SEP]:0",
        pair="[CLS]:0 $A:0 [SEP]:0 $B:0 [SEP]:0",
        special_tokens=[("[CLS]", cls), ("[SEP]", sep)],
    )
    extra = {} if model_max_length is None else {"model_max_length": model_max_length}
    transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok,
        cls_token="[CLS]",
        sep_token="[SEP]",
        pad_token="[PAD]",
        unk_token="[UNK]",
        mask_token="[MASK]",
        model_input_names=["input_ids", "attention_mask"],
        **extra,
    ).save_pretrained(path)
    config_path = os.path.join(path, "tokenizer_config.json")
    with open(config_path, encoding="utf-8") as f:
        config = json.load(f)
    config["tokenizer_class"] = "PreTrainedTokenizerFast"  # as the hub's ModernBERT folders say
    with open(config_path, "w", encoding="utf-8") as f:
        json.dump(config, f)
    return path


if __name__ == "__main__":
    os.makedirs(TRAINED, exist_ok=True)
    for _name, _tok in train_backends().items():
        _tok.save(os.path.join(TRAINED, f"{_name}.json"))
