"""Legacy BERT checkpoints, read without TensorFlow or JAX: transformers' TF 2 (``tf_model.h5``), Flax
(``flax_model.msgpack``) and Google's original TF1 checkpoints (``bert_model.ckpt.index`` + ``.data-*``).

One module per format: :mod:`.tf2_h5` (h5py), :mod:`.flax_msgpack` (msgpack) and :mod:`.tf1_bundle`
(TensorFlow tensor bundles: an :mod:`.sstable` index of :mod:`.protobuf` entries, CRC-32C by
google-crc32c, snappy by cramjam). These packages are the ``[legacy]`` extra; a missing one raises
``ImportError`` saying ``pip install`` the package, or ``'.[legacy]'`` in a checkout.

Every checkpoint comes back as the state dict that transformers' PyTorch class of the same head would
hold (``bert.``-prefixed base model, ``[out, in]`` linear weights, ``weight``/``bias`` LayerNorms, no tied
decoder weight, no optimizer slots; see :mod:`.names`). :func:`convert_checkpoint` writes it as a
safetensors folder (the ``fastbert convert SRC DST`` command).
"""

from .checkpoints import find_legacy_checkpoint, load_legacy_checkpoint
from .common import EXTRA_HINT, LegacyStateDict
from .convert import check_shapes, convert_checkpoint, expected_shapes, infer_architecture
from .flax_msgpack import FLAX_WEIGHTS_NAME
from .tf1_bundle import TF1_INDEX_NAMES, read_tf1_bundle, read_tf1_header
from .tf2_h5 import TF2_WEIGHTS_NAME

__all__ = [
    "find_legacy_checkpoint",
    "load_legacy_checkpoint",
    "convert_checkpoint",
    "check_shapes",
    "expected_shapes",
    "infer_architecture",
    "read_tf1_bundle",
    "read_tf1_header",
    "LegacyStateDict",
    "EXTRA_HINT",
    "TF1_INDEX_NAMES",
    "TF2_WEIGHTS_NAME",
    "FLAX_WEIGHTS_NAME",
]
