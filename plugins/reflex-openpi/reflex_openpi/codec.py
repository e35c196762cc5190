"""openpi's msgpack-numpy frames, written from the protocol (not copied from openpi).

An array travels as a map ``{"__ndarray__": True, "data": <bytes>, "dtype": dtype.str,
"shape": [...]}`` and a numpy scalar as ``{"__npgeneric__": True, "data": value, "dtype": ...}``.
openpi's own packer writes those keys as msgpack *bin* (Python bytes); both forms are read,
and replies use bytes keys so that openpi's unpacker (which looks for ``b"__ndarray__"``)
rebuilds the arrays.

Nothing is ever unpickled: object, void (structured) and complex dtypes are refused both ways,
and an array's byte count must match its dtype and shape exactly.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import msgpack
import numpy as np

from reflex_core.errors import ValidationError

REFUSED_KINDS = frozenset("OVc")  # object (pickle), void/structured, complex
BAD_FRAME = "openpi-bad-frame"
_MAX_DIMS = 8


class CodecError(ValidationError):
    """A frame that is not valid msgpack-numpy (422 ``openpi-bad-frame``)."""

    slug = BAD_FRAME


def _get(obj: Mapping[Any, Any], key: str) -> Any:
    value = obj.get(key)
    return obj.get(key.encode()) if value is None else value


def _dtype(value: Any) -> np.dtype[Any]:
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    if not isinstance(value, str):
        raise CodecError(f"array dtype must be a string like '<f4', got {type(value).__name__}")
    try:
        dtype = np.dtype(value)
    except (TypeError, ValueError) as exc:
        raise CodecError(f"unknown array dtype {value!r}") from exc
    if dtype.kind in REFUSED_KINDS or dtype.hasobject:
        raise CodecError(f"array dtype {value!r} is refused (object, void and complex are)")
    return dtype


def _decode(obj: dict[Any, Any]) -> Any:
    if _get(obj, "__ndarray__"):
        data, shape = _get(obj, "data"), _get(obj, "shape")
        dtype = _dtype(_get(obj, "dtype"))
        if not isinstance(data, bytes):
            raise CodecError("array data must be bytes")
        if not isinstance(shape, list | tuple) or len(shape) > _MAX_DIMS:
            raise CodecError(f"array shape must be a list of at most {_MAX_DIMS} sizes")
        if not all(type(n) is int and n >= 0 for n in shape):
            raise CodecError(f"array shape {shape!r} must hold non-negative integers")
        expected = math.prod(shape) * dtype.itemsize
        if len(data) != expected:
            raise CodecError(
                f"array of shape {tuple(shape)} and dtype {dtype.str} needs {expected} bytes, "
                f"got {len(data)}"
            )
        return np.frombuffer(data, dtype=dtype).reshape(shape)
    if _get(obj, "__npgeneric__"):
        dtype = _dtype(_get(obj, "dtype"))
        try:
            return dtype.type(_get(obj, "data"))
        except (TypeError, ValueError) as exc:
            raise CodecError(f"bad numpy scalar of dtype {dtype.str}") from exc
    return obj


def _encode(obj: Any) -> Any:
    if isinstance(obj, np.ndarray | np.generic) and (
        obj.dtype.kind in REFUSED_KINDS or obj.dtype.hasobject
    ):
        raise TypeError(f"refusing to send dtype {obj.dtype}")
    if isinstance(obj, np.ndarray):
        array = np.ascontiguousarray(obj)
        return {
            b"__ndarray__": True,
            b"data": array.tobytes(),
            b"dtype": array.dtype.str,
            b"shape": list(array.shape),
        }
    if isinstance(obj, np.generic):
        return {b"__npgeneric__": True, b"data": obj.item(), b"dtype": obj.dtype.str}
    raise TypeError(f"cannot send {type(obj).__name__}")


def packb(obj: Any) -> bytes:
    """msgpack with numpy arrays and scalars (openpi's layout)."""
    packed: bytes = msgpack.packb(obj, default=_encode, use_bin_type=True)
    return packed


def unpackb(data: bytes) -> Any:
    """Decode one frame. :raises CodecError: not msgpack, or a refused / inconsistent array."""
    try:
        return msgpack.unpackb(data, object_hook=_decode, raw=False)
    except CodecError:
        raise
    except Exception as exc:  # msgpack's errors on untrusted bytes are many; all are bad input
        raise CodecError(f"not a msgpack frame ({type(exc).__name__}: {exc})") from exc
