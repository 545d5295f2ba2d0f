"""Converting a legacy checkpoint into a folder that transformers 5 and fastbert load:
``model.safetensors`` + ``config.json`` (+ the tokenizer files found beside the checkpoint).

The config says which shapes the tensors must have (a tensor that does not fit is refused, naming its
file and name); the heads present (and the config's ``architectures``) say which class it is.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import sys
from collections.abc import Callable

import torch

from .. import hub as hub_files
from ..hub import HubOptions
from ..output_files import output_name
from .checkpoints import find_legacy_checkpoint, load_legacy_checkpoint
from .common import LegacyStateDict

# Files a converted folder needs besides the weights and config (copied when present).
TOKENIZER_FILES = (
    "vocab.txt",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
)


def _layer_shapes(config) -> dict[str, tuple[int, ...]]:
    """The parameters of one encoder layer and their shapes."""
    H, F = config.hidden_size, config.intermediate_size
    shapes: dict[str, tuple[int, ...]] = {}
    for name in (
        "attention.self.query",
        "attention.self.key",
        "attention.self.value",
        "attention.output.dense",
    ):
        shapes |= {f"{name}.weight": (H, H), f"{name}.bias": (H,)}
    shapes |= {"attention.output.LayerNorm.weight": (H,), "attention.output.LayerNorm.bias": (H,)}
    shapes |= {"intermediate.dense.weight": (F, H), "intermediate.dense.bias": (F,)}
    shapes |= {"output.dense.weight": (H, F), "output.dense.bias": (H,)}
    shapes |= {"output.LayerNorm.weight": (H,), "output.LayerNorm.bias": (H,)}
    return shapes


def expected_shapes(config, state_dict: dict[str, torch.Tensor]) -> dict[str, tuple[int, ...] | None]:
    """For each key of ``state_dict``, the shape the config implies (None: any shape, e.g. a classifier),
    or a missing entry when the config has no such parameter (a layer beyond ``num_hidden_layers``)."""
    V, H, P = config.vocab_size, config.hidden_size, config.max_position_embeddings
    T, L = config.type_vocab_size, config.num_hidden_layers
    shapes: dict[str, tuple[int, ...] | None] = {
        "embeddings.word_embeddings.weight": (V, H),
        "embeddings.position_embeddings.weight": (P, H),
        "embeddings.token_type_embeddings.weight": (T, H),
        "embeddings.LayerNorm.weight": (H,),
        "embeddings.LayerNorm.bias": (H,),
        "pooler.dense.weight": (H, H),
        "pooler.dense.bias": (H,),
        "cls.predictions.bias": (V,),
        "cls.predictions.transform.dense.weight": (H, H),
        "cls.predictions.transform.dense.bias": (H,),
        "cls.predictions.transform.LayerNorm.weight": (H,),
        "cls.predictions.transform.LayerNorm.bias": (H,),
        "cls.predictions.decoder.weight": (V, H),
        "cls.predictions.decoder.bias": (V,),
        "cls.seq_relationship.weight": (2, H),
        "cls.seq_relationship.bias": (2,),
        "qa_outputs.weight": (2, H),
        "qa_outputs.bias": (2,),
        "classifier.weight": None,
        "classifier.bias": None,
    }
    layer = _layer_shapes(config)
    out: dict[str, tuple[int, ...] | None] = {}
    for key in state_dict:
        k = key.removeprefix("bert.")
        m = re.fullmatch(r"encoder\.layer\.(\d+)\.(.+)", k)
        if m:
            if int(m.group(1)) < L and m.group(2) in layer:
                out[key] = layer[m.group(2)]
        elif k in shapes:
            out[key] = shapes[k]
    return out


def check_shapes(config, state_dict: LegacyStateDict | dict[str, torch.Tensor], where: str = "") -> None:
    """Raise ``ValueError`` naming the file and tensor whose shape does not fit ``config``."""
    sources = getattr(state_dict, "sources", {})
    shapes = expected_shapes(config, state_dict)
    for key, want in shapes.items():
        got = tuple(state_dict[key].shape)
        if want is not None and got != want:
            src = sources.get(key, where or key)
            raise ValueError(
                f"{src}: shape {list(got)} does not fit the config ({key} should be {list(want)}: "
                f"vocab_size={config.vocab_size}, hidden_size={config.hidden_size}, "
                f"intermediate_size={config.intermediate_size}, max_position_embeddings={config.max_position_embeddings}, "
                f"type_vocab_size={config.type_vocab_size})"
            )
    for key in ("classifier.weight", "classifier.bias"):
        if key in state_dict:
            t = state_dict[key]
            bad = (
                (t.dim() != 2 or t.shape[1] != config.hidden_size) if key.endswith("weight") else t.dim() != 1
            )
            if bad:
                raise ValueError(
                    f"{sources.get(key, key)}: shape {list(t.shape)} does not fit hidden_size={config.hidden_size}"
                )


_BASE_KEYS = (
    "embeddings.word_embeddings.weight",
    "embeddings.position_embeddings.weight",
    "embeddings.token_type_embeddings.weight",
    "embeddings.LayerNorm.weight",
    "embeddings.LayerNorm.bias",
)
_HEAD_KEYS = {
    "mlm": (
        "cls.predictions.bias",
        "cls.predictions.transform.dense.weight",
        "cls.predictions.transform.dense.bias",
        "cls.predictions.transform.LayerNorm.weight",
        "cls.predictions.transform.LayerNorm.bias",
    ),
    "nsp": ("cls.seq_relationship.weight", "cls.seq_relationship.bias"),
    "classifier": ("classifier.weight", "classifier.bias"),
    "qa": ("qa_outputs.weight", "qa_outputs.bias"),
}
_CLASSIFIER_ARCHS = ("BertForSequenceClassification", "BertForTokenClassification", "BertForMultipleChoice")
# each class and the heads it holds
_ARCH_HEADS: dict[str, tuple[str, ...]] = {
    "BertModel": (),
    "BertForPreTraining": ("mlm", "nsp"),
    "BertLMHeadModel": ("mlm",),
    "BertForMaskedLM": ("mlm",),
    "BertForNextSentencePrediction": ("nsp",),
    **dict.fromkeys(_CLASSIFIER_ARCHS, ("classifier",)),
    "BertForQuestionAnswering": ("qa",),
}

# the head prefix of each head, and the classes that build their BertModel with add_pooling_layer=False
_HEAD_PREFIXES = {"mlm": "cls.predictions.", "nsp": "cls.seq_relationship.", "classifier": "classifier.",
                  "qa": "qa_outputs."}  # fmt: skip
_NO_POOLER = ("BertForMaskedLM", "BertLMHeadModel", "BertForTokenClassification", "BertForQuestionAnswering")


def _arch_holds(arch: str, key: str) -> bool:
    """Whether the class ``arch`` has a parameter ``key`` (a name of the converted state dict): a run_squad.py
    checkpoint's pooler, or a pre-training head kept beside a classifier, is not one of its parameters."""
    if key.startswith("bert."):
        return not (key.startswith("bert.pooler.") and arch in _NO_POOLER)
    return any(key.startswith(_HEAD_PREFIXES[head]) for head in _ARCH_HEADS.get(arch, ()))


def infer_architecture(state_dict: dict[str, torch.Tensor], config=None) -> str:
    """The PyTorch class whose heads ``state_dict`` holds. A config naming a consistent class (including
    its TF/Flax twin, such as ``TFBertForTokenClassification``) decides between look-alikes."""
    has = {head: any(k in state_dict for k in keys) for head, keys in _HEAD_KEYS.items()}
    if has["mlm"] and has["nsp"]:
        candidates = ["BertForPreTraining"]
    elif has["mlm"]:
        candidates = ["BertForMaskedLM", "BertLMHeadModel"]
    elif has["nsp"]:
        candidates = ["BertForNextSentencePrediction"]
    elif has["qa"]:
        candidates = ["BertForQuestionAnswering"]
    elif has["classifier"]:
        candidates = list(_CLASSIFIER_ARCHS)
        if not any(k.removeprefix("bert.").startswith("pooler.") for k in state_dict):
            # TFBertForTokenClassification / FlaxBertForTokenClassification store no pooler: as a
            # BertForSequenceClassification, transformers would run a random one
            candidates.insert(0, candidates.pop(candidates.index("BertForTokenClassification")))
    else:
        candidates = ["BertModel"]
    declared = []
    for arch in getattr(config, "architectures", None) or []:
        arch = re.sub(r"^(TF|Flax)", "", str(arch))
        declared.append(arch)
    for arch in declared:
        if arch in candidates:
            return arch
    if candidates[0] == "BertForMaskedLM" and getattr(config, "is_decoder", False):
        return "BertLMHeadModel"
    return candidates[0]


def _required_keys(arch: str, config) -> list[str]:
    base = [f"bert.{k}" for k in _BASE_KEYS]
    for i in range(config.num_hidden_layers):
        base += [f"bert.encoder.layer.{i}.{n}" for n in _layer_shapes(config)]
    heads = _ARCH_HEADS.get(arch, ())
    for head in heads:
        base += list(_HEAD_KEYS[head])
    return base


def _not_found(src: str, from_tf: bool, from_flax: bool, hub: HubOptions | None = None) -> OSError:
    reason = None if os.path.exists(src) else hub_files.hub_unavailable(hub)
    if reason is not None:  # a hub id, offline or unreachable: not "holds no checkpoint"
        return OSError(
            f"{src!r} is not a local folder, and no checkpoint of it is in the local cache ({reason}): pass a "
            "local folder that holds the checkpoint"
        )
    if from_tf:
        kinds = "TF checkpoint (tf_model.h5 or *.ckpt.index)"
    elif from_flax:
        kinds = "Flax checkpoint (flax_model.msgpack)"
    else:
        kinds = "TF 2 (tf_model.h5), Flax (flax_model.msgpack) or Google TF1 (*.ckpt.index + data shards) checkpoint"
    return OSError(f"{src} holds no {kinds}")


def _under_bert(state):
    """A base model's tensors (a FlaxBertModel's ``embeddings.`` ...) under ``bert.``, the names the
    conversion checks BERT's classes by (the sources kept for messages)."""
    from .names import BASE_SEGMENTS

    out = type(state)()
    out.sources = {}
    for key, value in state.items():
        new = f"bert.{key}" if key.split(".", 1)[0] in BASE_SEGMENTS else key
        out[new] = value
        if key in getattr(state, "sources", {}):
            out.sources[new] = state.sources[key]
    return out


def convert_checkpoint(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    *,
    from_tf: bool = False,
    from_flax: bool = False,
    hub: HubOptions | None = None,
    overwrite: bool = False,
    log: Callable[[str], None] | None = None,
) -> str:
    """Convert the legacy checkpoint at ``src`` (folder, hub id or file) into a transformers 5 folder
    ``dst``: ``model.safetensors`` + ``config.json`` (+ the tokenizer files found beside the checkpoint).

    ``from_tf`` / ``from_flax`` / ``hub`` are as for :func:`find_legacy_checkpoint`; an existing
    ``dst/model.safetensors`` (and the tokenizer files there) is replaced only with ``overwrite``. ``log`` receives what is skipped and
    what was written (default: stderr). Returns the architecture written into ``config.json``.
    """
    from safetensors.torch import save_file

    from ..config import BertConfig

    hub = hub or HubOptions()
    src, dst = str(src), str(dst)
    log = log or (lambda msg: print(msg, file=sys.stderr))
    found = find_legacy_checkpoint(src, from_tf=from_tf, from_flax=from_flax, hub=hub)
    if found is None:
        raise _not_found(src, from_tf, from_flax, hub)
    kind, files = found
    out_model = os.path.join(dst, "model.safetensors")
    if os.path.isfile(dst):
        raise OSError(f"{dst} is a file; give a folder to write the converted model into")
    if os.path.exists(out_model) and not overwrite:
        raise OSError(f"{out_model} exists already (pass --overwrite to replace it)")

    # the subfolder is of src; a checkpoint file given directly has its config beside it
    config_src, config_hub = hub_files.config_source(src, hub)
    _refuse_other_families(config_src, config_hub)  # before the checkpoint is read
    config = BertConfig.from_pretrained(config_src, hub=config_hub)
    state = _under_bert(load_legacy_checkpoint(kind, files))
    check_shapes(config, state)

    arch = infer_architecture(state, config)
    known = {k for k in expected_shapes(config, state) if _arch_holds(arch, k)}
    unexpected = sorted(k for k in state if k not in known)
    for k in unexpected:
        log(f"fastbert convert: skipping {state.sources.get(k, k)} (no {arch} parameter named {k})")
    missing = [k for k in _required_keys(arch, config) if k not in state]
    if missing:
        shown = ", ".join(missing[:8]) + (f" and {len(missing) - 8} more" if len(missing) > 8 else "")
        raise ValueError(f"{files[0]}: the checkpoint lacks weights of a {arch}: {shown}")
    if "classifier.weight" in state:
        n = state["classifier.weight"].shape[0]
        if arch != "BertForMultipleChoice" and config.num_labels != n:
            config.num_labels = n

    out: dict[str, torch.Tensor] = {}
    for k, v in state.items():
        if k in unexpected:
            continue
        if arch == "BertModel":  # as transformers writes a BertModel: no prefix
            k = k.removeprefix("bert.")
        out[k] = v.contiguous()
    if (
        "cls.predictions.bias" in out
        and "cls.predictions.decoder.bias" not in out
        and not config.tie_word_embeddings
    ):
        # Flax stores one bias; transformers 5 ties the decoder's to it only with tied embeddings (untied, the
        # decoder's own was left to initialisation)
        out["cls.predictions.decoder.bias"] = out["cls.predictions.bias"].clone()
    config.architectures = [arch]
    dtypes = {v.dtype for v in out.values() if v.is_floating_point()}
    if len(dtypes) == 1:
        config.torch_dtype = dtypes.pop()

    try:
        os.makedirs(dst, exist_ok=True)
    except OSError as e:
        raise OSError(f"cannot create the output folder {dst}: {e.strerror or e}") from None
    # the weights last: an interrupted conversion leaves no model.safetensors without its config.json (which
    # a rerun would refuse to replace without --overwrite); the earlier weights go before the new config and
    # tokenizer files are written, so an interrupted --overwrite leaves no earlier weights beside them
    with contextlib.suppress(FileNotFoundError):
        os.remove(out_model)
    config.save_pretrained(dst)
    _copy_tokenizer_files(config_src, dst, config_hub, overwrite, log)
    with output_name(out_model) as name:  # beside it, renamed over it once complete
        save_file(out, name, metadata={"format": "pt"})
    log(f"fastbert convert: wrote {arch} ({len(out)} tensors, from {kind} {files[0]}) to {dst}")
    return arch


def _refuse_other_families(config_src: str, hub: HubOptions) -> None:
    """``ValueError`` for a checkpoint whose config.json names another family than BERT (its ``model_type``,
    or for one without, its ``architectures``): the conversion writes BERT's
    classes only, and said "describes a 'roberta' model, not a BERT model (fastbert.AutoConfig picks ...)"."""
    import json

    from ..config import find_config_file
    from ..registry import model_type_of

    config_file = find_config_file(config_src, hub)
    try:
        with open(config_file, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return  # BertConfig.from_pretrained says what is wrong with it
    # not the name rule (a folder path holding "electra" somewhere): Google's bert_config.json has no model_type
    model_type = model_type_of(data) if isinstance(data, dict) else None
    if model_type not in (None, "bert"):
        raise ValueError(
            f"{config_file} describes a {model_type!r} model: fastbert convert converts BERT checkpoints only; "
            "load this one with fastbert.AutoModel (or the class of its head).from_pretrained(SRC, from_tf=True "
            "or from_flax=True) and write it with save_pretrained"
        )


def _copy_tokenizer_files(
    config_src: str, dst: str, hub: HubOptions, overwrite: bool, log: Callable[[str], None]
) -> None:
    """The tokenizer files beside the checkpoint, copied into ``dst``: those missing there, and with
    ``overwrite`` those there too (another model's vocabulary would be kept beside the new weights)."""
    for name in TOKENIZER_FILES:
        try:
            path = hub_files.resolve_file(config_src, name, hub=hub, required=False)
        except OSError:
            path = None
        there = os.path.exists(os.path.join(dst, name))
        if path is None and there and overwrite:
            log(f"fastbert convert: kept {os.path.join(dst, name)} from before ({config_src} has no {name})")
        if path is not None and (overwrite or not there):
            # beside it, renamed over it once complete: a half-copied file would be kept by the next run
            with output_name(os.path.join(dst, name)) as tmp:
                shutil.copyfile(path, tmp)
