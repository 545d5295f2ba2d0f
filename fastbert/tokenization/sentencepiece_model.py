"""Reading a SentencePiece model file (``sentencepiece.bpe.model``, ``spiece.model``) without sentencepiece or
protobuf: the few fields a Unigram tokenizer needs, read from the protobuf wire format.

The message is sentencepiece's ``ModelProto`` (src/sentencepiece_model.proto): ``pieces = 1`` (each ``piece = 1``
string, ``score = 2`` float, ``type = 3`` enum), ``trainer_spec = 2`` (``model_type = 3``, ``byte_fallback = 35``,
``unk_id = 40``) and ``normalizer_spec = 3`` (``precompiled_charsmap = 2``, ``add_dummy_prefix = 3``,
``remove_extra_whitespaces = 4``). Every other field is skipped by its wire type.
"""

from __future__ import annotations

import dataclasses
import struct

# SentencePiece.Type and TrainerSpec.ModelType values
NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6
UNIGRAM, BPE, WORD, CHAR = 1, 2, 3, 4
MODEL_TYPE_NAMES = {UNIGRAM: "Unigram", BPE: "BPE", WORD: "word", CHAR: "char"}


@dataclasses.dataclass
class SentencePieceModel:
    """What a Unigram tokenizer needs from a SentencePiece model file."""

    pieces: list[tuple[str, float, int]]  # (piece, score, type) in id order
    model_type: int = UNIGRAM
    unk_id: int = 0
    byte_fallback: bool = False
    precompiled_charsmap: bytes = b""
    add_dummy_prefix: bool = True
    remove_extra_whitespaces: bool = True


class _Reader:
    def __init__(self, data: bytes, path: str):
        self.data, self.pos, self.path = data, 0, path

    def _fail(self, what: str) -> ValueError:
        return ValueError(f"{self.path} is not a SentencePiece model file ({what} at byte {self.pos})")

    def varint(self) -> int:
        shift = result = 0
        while True:
            if self.pos >= len(self.data) or shift > 63:
                raise self._fail("a truncated number")
            byte = self.data[self.pos]
            self.pos += 1
            result |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return result
            shift += 7

    def fields(self):
        """(field number, wire type, value) of each field: ints for varints, bytes for the rest."""
        while self.pos < len(self.data):
            key = self.varint()
            number, wire = key >> 3, key & 7
            if wire == 0:
                value: int | bytes = self.varint()
            elif wire in (1, 5):
                size = 8 if wire == 1 else 4
                value = self.data[self.pos : self.pos + size]
                self.pos += size
            elif wire == 2:
                size = self.varint()
                value = self.data[self.pos : self.pos + size]
                self.pos += size
            else:
                raise self._fail(f"wire type {wire}")
            if self.pos > len(self.data):
                raise self._fail("a field that runs past the end")
            yield number, wire, value


def _text(value: bytes, path: str) -> str:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"{path} is not a SentencePiece model file (a piece that is not UTF-8)") from None


def read_sentencepiece_model(path: str) -> SentencePieceModel:
    """The pieces, model type, unk id and normalizer of a SentencePiece model file; ``ValueError`` naming the file
    when it is not one."""
    with open(path, "rb") as f:
        data = f.read()
    model = SentencePieceModel(pieces=[])
    for number, wire, value in _Reader(data, path).fields():
        if number == 1 and wire == 2:
            piece, score, kind = None, 0.0, NORMAL
            for n, w, v in _Reader(value, path).fields():
                if n == 1 and w == 2:
                    piece = _text(v, path)
                elif n == 2 and w == 5:
                    score = struct.unpack("<f", v)[0]
                elif n == 3 and w == 0:
                    kind = v
            if piece is None:
                raise ValueError(f"{path} is not a SentencePiece model file (a piece without its text)")
            model.pieces.append((piece, score, kind))
        elif number == 2 and wire == 2:
            for n, w, v in _Reader(value, path).fields():
                if w != 0:
                    continue
                if n == 3:
                    model.model_type = v
                elif n == 35:
                    model.byte_fallback = bool(v)
                elif n == 40:
                    model.unk_id = v
        elif number == 3 and wire == 2:
            for n, w, v in _Reader(value, path).fields():
                if n == 2 and w == 2:
                    model.precompiled_charsmap = bytes(v)
                elif n == 3 and w == 0:
                    model.add_dummy_prefix = bool(v)
                elif n == 4 and w == 0:
                    model.remove_extra_whitespaces = bool(v)
    if not model.pieces:
        raise ValueError(f"{path} is not a SentencePiece model file (it has no pieces)")
    return model
