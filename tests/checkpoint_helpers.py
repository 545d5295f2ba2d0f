"""Tiny random checkpoints saved by transformers (a test dependency), each folder with a WordPiece
tokenizer: what the pipeline, CLI and serve tests load as a user's model."""

from __future__ import annotations

import torch

WORDS = (
    "the a of and to in is was he she it that for on with as his her at by plants create energy through "
    "process known photosynthesis paris capital france city john lives new york works google what where who "
    "does answer question sun light green leaf river long old born"
).split()


def wordpiece_vocab(words=WORDS) -> list[str]:
    """Special tokens, the words, a few suffixes and punctuation, single letters and their ## forms."""
    return (
        ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
        + list(words)
        + ["##s", "##ing", "##ed", "##er", ".", ",", "?", "!"]
        + list("abcdefghijklmnopqrstuvwxyz")
        + ["##" + c for c in "abcdefghijklmnopqrstuvwxyz"]
    )


def save_tiny_checkpoints(root, heads: dict, vocab: list[str], *, max_pos: int = 64, seed: int = 0) -> dict:
    """{name: folder} of transformers models of ``heads`` ({name: (class name, config extras)}), hidden 32,
    2 layers, 4 heads, intermediate 64; ``id2label`` extras get the matching ``label2id``."""
    import transformers

    vocab_dir = root / "vocab"
    vocab_dir.mkdir()
    (vocab_dir / "vocab.txt").write_text("\n".join(vocab) + "\n")
    tok = transformers.BertTokenizerFast.from_pretrained(str(vocab_dir), model_max_length=max_pos)
    out = {}
    for i, (name, (cls_name, extra)) in enumerate(heads.items()):
        torch.manual_seed(seed + i)
        extra = dict(extra)
        if "id2label" in extra:
            extra["label2id"] = {v: k for k, v in extra["id2label"].items()}
        cfg = transformers.BertConfig(
            vocab_size=len(vocab),
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            intermediate_size=64,
            max_position_embeddings=max_pos,
            **extra,
        )
        model = getattr(transformers, cls_name)(cfg).eval()
        path = root / name
        model.save_pretrained(str(path))
        tok.save_pretrained(str(path))
        out[name] = str(path)
    return out
