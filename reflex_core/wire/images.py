"""Camera images on the wire: base64 / data-URL / raw encoded bytes <-> uint8 HWC RGB arrays.

Only JPEG and PNG are decoded (Pillow is told so, which keeps its other, rarer decoders out of
reach of network input). Size limits are checked before the pixels are decoded: on the encoded
length first, then on the width x height the header declares.
"""

from __future__ import annotations

import base64
import binascii
import io
import re
import zlib
from typing import Any

import numpy as np
from PIL import Image

from reflex_core.errors import PayloadTooLarge, ValidationError

DEFAULT_MAX_IMAGE_BYTES = 16 * 1024 * 1024
DEFAULT_MAX_IMAGE_PIXELS = 4096 * 4096
DECODE_FORMATS = ("JPEG", "PNG")
ENCODE_FORMATS = ("JPEG", "PNG")

_DATA_URL = re.compile(r"^data:([^,;]*)((?:;[^,;]*)*),", re.ASCII)
_WHITESPACE = re.compile(r"\s+")
# 8-bit modes Pillow converts to RGB without losing meaning. 16-bit and float images (depth
# maps) would be clipped to 255, so they are refused instead of silently mangled.
_CONVERTIBLE_MODES = frozenset({"1", "L", "LA", "La", "P", "PA", "RGB", "RGBA", "RGBX", "RGBa"})
_CONVERTIBLE_MODES |= {"CMYK", "YCbCr", "LAB", "HSV"}


def _decode_failed(field: str, why: str) -> ValidationError:
    return ValidationError(f"{field}: {why}", slug="image-decode-failed", field=field)


def _too_large(field: str, why: str, **details: Any) -> PayloadTooLarge:
    return PayloadTooLarge(f"{field}: {why}", slug="image-too-large", field=field, details=details)


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _check_png_crcs(data: bytes, field: str) -> None:
    """Every PNG chunk's CRC, pixel data included: Pillow checks only some chunks, so a frame
    damaged in transit would otherwise decode to wrong pixels without a word."""
    view = memoryview(data)
    pos = len(_PNG_SIGNATURE)
    while pos + 12 <= len(data):
        length = int.from_bytes(view[pos : pos + 4], "big")
        end = pos + 8 + length
        if end + 4 > len(data):
            break  # truncated: Pillow reports it
        stored = int.from_bytes(view[end : end + 4], "big")
        if zlib.crc32(view[pos + 4 : end]) != stored:
            kind = bytes(view[pos + 4 : pos + 8]).decode("latin-1")
            raise _decode_failed(field, f"corrupt PNG: the {kind} chunk's CRC does not match")
        if view[pos + 4 : pos + 8] == b"IEND":
            return
        pos = end + 4


def image_bytes(
    value: str | bytes | bytearray | memoryview, *, field: str, max_bytes: int
) -> bytes:
    """The encoded image file carried by a wire value: raw bytes (msgpack) as they are, a string
    as standard base64 (padding optional, whitespace ignored) or a ``data:...;base64,`` URL."""
    if isinstance(value, bytes | bytearray | memoryview):
        data = bytes(value)
        if len(data) > max_bytes:
            raise _too_large(
                field, f"{len(data)} bytes, limit {max_bytes}", bytes=len(data), limit=max_bytes
            )
        return data
    if not isinstance(value, str):
        raise ValidationError(
            f"{field}: expected a base64 string or bytes, got {type(value).__name__}",
            slug="invalid-type",
            field=field,
        )
    text = value
    if text.startswith("data:"):
        match = _DATA_URL.match(text)
        if match is None:
            raise _decode_failed(field, "malformed data URL")
        media_type, params = match.group(1), match.group(2).split(";")
        if "base64" not in params:
            raise _decode_failed(field, "only base64 data URLs are accepted")
        if media_type and not media_type.startswith("image/"):
            raise _decode_failed(field, f"data URL media type {media_type!r} is not an image")
        text = text[match.end() :]
    # Check the size the base64 text implies before allocating the decoded copy.
    if len(text) * 3 // 4 > max_bytes + 3:
        approx = len(text) * 3 // 4
        raise _too_large(
            field, f"about {approx} bytes, limit {max_bytes}", bytes=approx, limit=max_bytes
        )
    if _WHITESPACE.search(text):  # MIME-style line-wrapped base64, stray newlines
        text = _WHITESPACE.sub("", text)
    text += "=" * (-len(text) % 4)
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise _decode_failed(field, f"not valid base64 ({exc})") from exc
    if len(data) > max_bytes:
        raise _too_large(
            field, f"{len(data)} bytes, limit {max_bytes}", bytes=len(data), limit=max_bytes
        )
    return data


def decode_image(
    value: str | bytes | bytearray | memoryview,
    *,
    field: str = "image",
    max_bytes: int = DEFAULT_MAX_IMAGE_BYTES,
    max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
) -> np.ndarray:
    """Decode one wire image to a (H, W, 3) uint8 RGB array.

    Grayscale and palette images are expanded to RGB; an alpha channel is dropped (not
    composited). Raises ``image-too-large`` (413) or ``image-decode-failed`` (422).
    """
    data = image_bytes(value, field=field, max_bytes=max_bytes)
    if not data:
        raise _decode_failed(field, "empty image")
    if data.startswith(_PNG_SIGNATURE):
        _check_png_crcs(data, field)
    try:
        image = Image.open(io.BytesIO(data), formats=DECODE_FORMATS)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        # Pillow's own bomb guard fires at open for absurd sizes (its warning is an error
        # under pytest's filterwarnings); report it as what it is.
        raise _too_large(field, str(exc), limit=max_pixels) from exc
    except Exception as exc:  # anything Pillow raises on untrusted bytes is bad input
        raise _decode_failed(field, f"not a JPEG or PNG image ({type(exc).__name__})") from exc
    with image:
        width, height = image.size
        if width * height > max_pixels:
            raise _too_large(
                field,
                f"{width}x{height} pixels, limit {max_pixels}",
                width=width,
                height=height,
                limit=max_pixels,
            )
        if image.mode not in _CONVERTIBLE_MODES:
            raise _decode_failed(
                field, f"pixel mode {image.mode!r} is not 8-bit; send an 8-bit RGB image"
            )
        try:
            rgb = image.convert("RGB")
            array = np.asarray(rgb, dtype=np.uint8)
        except Exception as exc:  # truncated or corrupt data only surfaces when decoding
            raise _decode_failed(
                field, f"corrupt image data ({type(exc).__name__}: {exc})"
            ) from exc
    if array.ndim != 3 or array.shape[2] != 3 or array.size == 0:
        raise _decode_failed(field, f"decoded to an unexpected shape {array.shape}")
    return array


def encode_image_bytes(image: Any, format: str = "JPEG", *, quality: int = 90) -> bytes:
    """Encode an image for the wire: ``image`` is a uint8 array (H, W), (H, W, 1), (H, W, 3) RGB
    or (H, W, 4) RGBA, a Pillow image, or already-encoded JPEG/PNG bytes (returned unchanged).

    JPEG is lossy (small, what cameras produce); PNG is lossless (exact round trip).
    """
    fmt = format.upper()
    if fmt == "JPG":
        fmt = "JPEG"
    if fmt not in ENCODE_FORMATS:
        raise ValidationError(
            f"image format {format!r}: choose from {', '.join(ENCODE_FORMATS)}",
            slug="invalid-value",
            field="format",
        )
    if isinstance(image, bytes | bytearray | memoryview):
        return bytes(image)
    if isinstance(image, Image.Image):
        pil = image
    else:
        array = np.asarray(image)
        if array.dtype != np.uint8:
            raise ValidationError(
                f"image array must be uint8, got {array.dtype} (scale and cast it first)",
                slug="invalid-type",
                field="image",
            )
        if array.ndim == 3 and array.shape[2] == 1:
            array = array[:, :, 0]
        if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
            raise ValidationError(
                f"image array must be (H, W), (H, W, 3) or (H, W, 4), got {array.shape}",
                slug="invalid-value",
                field="image",
            )
        if 0 in array.shape:
            raise ValidationError("image array is empty", slug="invalid-value", field="image")
        pil = Image.fromarray(np.ascontiguousarray(array))
    if fmt == "JPEG" and pil.mode not in ("RGB", "L"):
        pil = pil.convert("RGB")
    buffer = io.BytesIO()
    pil.save(buffer, format=fmt, **({"quality": quality} if fmt == "JPEG" else {}))
    return buffer.getvalue()


def encode_image(image: Any, format: str = "JPEG", *, quality: int = 90) -> str:
    """:func:`encode_image_bytes`, as the base64 string a JSON observation carries."""
    return base64.b64encode(encode_image_bytes(image, format, quality=quality)).decode("ascii")
