"""The safetensors byte layout: encode a header, and parse and validate one before reading data.

A file is ``[8-byte little-endian N][N bytes of JSON header][data]``. The header maps each
tensor name to ``{"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}`` (offsets
into ``data``), plus an optional ``"__metadata__": {str: str}``. Tensors are raw little-endian
bytes in C order and together cover ``data`` exactly, without gaps or overlaps. This is the
layout of the ``safetensors`` package (https://github.com/huggingface/safetensors), so files
written here load there and the other way round. Nothing here ever unpickles anything.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

HEADER_LENGTH_BYTES = 8
MAX_HEADER_BYTES = 100_000_000  # the limit the safetensors package enforces
METADATA_KEY = "__metadata__"

# safetensors dtype code -> little-endian NumPy dtype
DTYPES: dict[str, np.dtype] = {
    "BOOL": np.dtype("|b1"),
    "U8": np.dtype("|u1"),
    "I8": np.dtype("|i1"),
    "U16": np.dtype("<u2"),
    "I16": np.dtype("<i2"),
    "F16": np.dtype("<f2"),
    "U32": np.dtype("<u4"),
    "I32": np.dtype("<i4"),
    "F32": np.dtype("<f4"),
    "U64": np.dtype("<u8"),
    "I64": np.dtype("<i8"),
    "F64": np.dtype("<f8"),
    "C64": np.dtype("<c8"),
}
_CODES = {dtype.newbyteorder("="): code for code, dtype in DTYPES.items()}


@dataclass(frozen=True)
class TensorInfo:
    """One validated header entry: where a tensor's bytes are and how to read them."""

    name: str
    code: str
    shape: tuple[int, ...]
    begin: int
    end: int

    @property
    def dtype(self) -> np.dtype:
        return DTYPES[self.code]


def dtype_code(name: str, dtype: np.dtype) -> str:
    """The safetensors code of a NumPy dtype; ``TypeError`` naming the tensor otherwise."""
    try:
        return _CODES[np.dtype(dtype).newbyteorder("=")]
    except KeyError:
        raise TypeError(
            f"tensor {name!r} has dtype {dtype}, which the safetensors format cannot store; "
            f"supported: {', '.join(str(d.newbyteorder('=')) for d in DTYPES.values())}"
        ) from None


Entry = tuple[str, str, tuple[int, ...]]  # (name, dtype code, shape)


def encode_header(entries: list[Entry], metadata: dict[str, str]) -> bytes:
    """``N`` and the JSON header for ``(name, code, shape)`` entries stored in this order.

    The header is padded with spaces to a multiple of 8 bytes so the data stays aligned.
    """
    header: dict[str, Any] = {METADATA_KEY: dict(metadata)} if metadata else {}
    offset = 0
    for name, code, shape in entries:
        nbytes = math.prod(shape) * DTYPES[code].itemsize
        offsets = [offset, offset + nbytes]
        header[name] = {"dtype": code, "shape": list(shape), "data_offsets": offsets}
        offset += nbytes
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    text += b" " * (-len(text) % 8)
    return len(text).to_bytes(HEADER_LENGTH_BYTES, "little") + text


def header_length(prefix: bytes, file_size: int) -> int:
    """Decode ``N`` from the first 8 bytes and check it against the file size."""
    if len(prefix) < HEADER_LENGTH_BYTES:
        raise ValueError(
            f"file is {file_size} bytes long, too short for a safetensors header "
            f"(needs at least {HEADER_LENGTH_BYTES}); it is truncated or not a checkpoint"
        )
    n = int.from_bytes(prefix[:HEADER_LENGTH_BYTES], "little")
    if n > MAX_HEADER_BYTES:
        raise ValueError(f"header length {n} exceeds the limit of {MAX_HEADER_BYTES} bytes")
    if HEADER_LENGTH_BYTES + n > file_size:
        raise ValueError(
            f"header length {n} runs past the end of the file ({file_size} bytes): "
            "the file is truncated or not a safetensors file"
        )
    return n


def parse_header(raw: bytes, data_size: int) -> tuple[list[TensorInfo], dict[str, str]]:
    """Validate the JSON header against ``data_size`` bytes of data; nothing is allocated here.

    Returns the tensors sorted by offset and the metadata. Raises ``ValueError`` naming the
    tensor (or the problem) for bad JSON, unknown dtypes, bad shapes, byte counts that do not
    match the shape, offsets out of range, overlapping tensors or gaps.
    """
    if not raw.startswith(b"{"):
        raise ValueError("header is not a JSON object: not a safetensors file")
    try:
        header = json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicate_keys)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(
            f"header is not valid UTF-8 JSON ({exc}): corrupt or foreign file"
        ) from None
    if not isinstance(header, dict):
        raise ValueError("header is not a JSON object: not a safetensors file")
    metadata = _check_metadata(header.pop(METADATA_KEY, {}))
    infos = sorted((_check_entry(name, entry) for name, entry in header.items()), key=_order)
    position = 0
    for info in infos:
        if info.begin != position:
            problem = "overlaps the previous tensor" if info.begin < position else "leaves a gap"
            raise ValueError(
                f"tensor {info.name!r}: data_offsets [{info.begin}, {info.end}] {problem} "
                f"(expected to start at byte {position})"
            )
        if info.end > data_size:
            raise ValueError(
                f"tensor {info.name!r}: data_offsets [{info.begin}, {info.end}] run past the "
                f"end of the data ({data_size} bytes): the file is truncated or corrupt"
            )
        position = info.end
    if position != data_size:
        raise ValueError(
            f"the data holds {data_size} bytes but the tensors cover {position}: "
            "the file is corrupt or has trailing bytes"
        )
    return infos, metadata


def _order(info: TensorInfo) -> tuple[int, int, str]:
    return (info.begin, info.end, info.name)


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"header names {key!r} twice: corrupt file")
        result[key] = value
    return result


def _check_metadata(metadata: Any) -> dict[str, str]:
    if not isinstance(metadata, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
    ):
        raise ValueError(f"{METADATA_KEY!r} must map strings to strings")
    return metadata


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_entry(name: str, entry: Any) -> TensorInfo:
    if not isinstance(entry, dict) or not {"dtype", "shape", "data_offsets"} <= set(entry):
        raise ValueError(f"tensor {name!r}: header entry needs dtype, shape and data_offsets")
    code, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
    if not isinstance(code, str) or code not in DTYPES:
        raise ValueError(
            f"tensor {name!r}: unknown or unsupported dtype {code!r}; "
            f"supported: {', '.join(DTYPES)}"
        )
    if not isinstance(shape, list) or not all(_is_int(s) and s >= 0 for s in shape):
        raise ValueError(
            f"tensor {name!r}: shape must be a list of non-negative integers, got {shape!r}"
        )
    if (
        not isinstance(offsets, list)
        or len(offsets) != 2
        or not all(_is_int(o) and o >= 0 for o in offsets)
        or offsets[0] > offsets[1]
    ):
        raise ValueError(
            f"tensor {name!r}: data_offsets must be [begin, end] with 0 <= begin <= end, "
            f"got {offsets!r}"
        )
    expected = math.prod(shape) * DTYPES[code].itemsize
    if offsets[1] - offsets[0] != expected:
        raise ValueError(
            f"tensor {name!r}: data_offsets {offsets} hold {offsets[1] - offsets[0]} bytes but "
            f"dtype {code} with shape {tuple(shape)} needs {expected}"
        )
    return TensorInfo(name, code, tuple(shape), offsets[0], offsets[1])
