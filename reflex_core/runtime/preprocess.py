"""Observation -> model inputs, and model outputs -> actions, in numpy only.

These functions are shared by the runtime and by the export parity gate: the torch reference and
the ONNX graphs receive exactly the arrays produced here, so parity compares the graphs and never
two preprocessing implementations. Every function is pure (no hidden state, inputs never mutated).

Everything family-specific is data: the artifact's preprocessing contract
(:class:`~reflex_core.runtime.io_spec.IOSpec`), which a family's loader wrote at export time.

- Images: uint8 HWC RGB -> float in [0, 1] -> bilinear resize keeping the aspect ratio
  (``align_corners=False``, no antialias, i.e. ``torch.nn.functional.interpolate``) -> padding
  to (H, W) with ``pad_value``, centred or in the bottom-right corner -> linear map onto the
  model's range. A camera the observation lacks is ``missing_fill`` and its mask is False.
- State: normalized with the checkpoint's statistics (QUANTILES, MEAN_STD, MIN_MAX, QUANTILE10,
  IDENTITY; float32 arithmetic in lerobot's operation order), then zero-padded to max_state_dim.
- Prompt: the contract's template over the (cleaned) task and, if it asks, the normalized state
  as bins over [-1, 1]. An observation without a prompt (or with an empty one) uses the
  contract's ``default_task`` (``""`` unless the family declares one).
- Actions: the first ``action_dim`` dims of the model output, unnormalized with the same mode.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import numpy as np

from reflex_core.errors import ArtifactError, ValidationError
from reflex_core.runtime.io_spec import ImageIO, IOSpec, PromptIO

#: Added to a zero denominator (lerobot's ``eps``).
NORM_EPS = 1e-8
#: The single-camera shorthand of the wire format: maps to the artifact's first camera.
SHORTHAND_CAMERA = "image"

# Statistic names each mode needs, as (low/center, high/scale).
_MODE_STATS: dict[str, tuple[str, str] | None] = {
    "IDENTITY": None,
    "QUANTILES": ("q01", "q99"),
    "QUANTILE10": ("q10", "q90"),
    "MIN_MAX": ("min", "max"),
    "MEAN_STD": ("mean", "std"),
}


# --------------------------------------------------------------------------------------------
# Images
# --------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=64)
def _bilinear_axis(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Source indices and weights of ``interpolate(mode="bilinear", align_corners=False)``.

    Cached: a camera keeps its resolution from frame to frame, so the same few (in, out) pairs
    come back on every request. The arrays are read-only because the cache shares them.
    """
    # torch's CPU kernel: a float32 scale, and the source coordinate rounded once to float32
    # (a fused multiply-add); this reproduces its weights bit for bit
    scale = np.float64(np.float32(in_size / out_size))
    src = (scale * (np.arange(out_size, dtype=np.float64) + 0.5) - 0.5).astype(np.float32)
    src = np.maximum(src, np.float32(0.0))  # torch clamps negative source coordinates to 0
    i0 = np.minimum(src.astype(np.int64), in_size - 1)
    i1 = np.minimum(i0 + 1, in_size - 1)
    frac = src - i0.astype(np.float32)
    for arr in (i0, i1, frac):
        arr.flags.writeable = False
    return i0, i1, frac


def bilinear_resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize a float (H, W, C) image like torch's bilinear interpolate with align_corners=False.

    :param image: float32 array (H, W, C).
    :returns: float32 array (height, width, C).
    """
    in_h, in_w = image.shape[:2]
    if (in_h, in_w) == (height, width):
        return image.astype(np.float32, copy=False)
    y0, y1, fy = _bilinear_axis(in_h, height)
    x0, x1, fx = _bilinear_axis(in_w, width)
    img = image.astype(np.float32, copy=False)
    fy = fy[:, None, None]
    rows = img[y0] * (1.0 - fy) + img[y1] * fy  # (height, in_w, C)
    fx = fx[None, :, None]
    return rows[:, x0] * (1.0 - fx) + rows[:, x1] * fx


def resized_shape(in_height: int, in_width: int, height: int, width: int) -> tuple[int, int]:
    """The size an image is scaled to before padding (aspect kept, fits inside height x width)."""
    ratio = max(in_width / width, in_height / height)
    return max(1, int(in_height / ratio)), max(1, int(in_width / ratio))


def resize_with_pad(
    image: np.ndarray,
    height: int,
    width: int,
    *,
    pad_value: float = 0.0,
    pad_position: str = "center",
) -> np.ndarray:
    """Resize keeping the aspect ratio, then pad to (height, width).

    :param image: uint8 (H, W, 3) RGB, or float (H, W, 3) already in [0, 1].
    :param pad_value: the padding, in [0, 1] units.
    :param pad_position: ``center`` or ``bottom_right`` (image in the bottom-right corner).
    :returns: float32 (height, width, 3) in [0, 1], padding ``pad_value``.
    """
    if image.shape[:2] == (height, width):
        return _as_unit_float(image)
    out = np.full((height, width, image.shape[2]), pad_value, dtype=np.float32)
    _resize_into(image, out.transpose(2, 0, 1), pad_position)
    return out


def _resize_into(image: np.ndarray, slot: np.ndarray, pad_position: str = "center") -> None:
    """Write ``resize_with_pad(image)`` into ``slot``, a (C, height, width) view already filled
    with the pad value, which is left untouched around the image, without the full-frame
    intermediates of :func:`resize_with_pad`.

    The values are the same bit for bit: every step is elementwise, so converting to [0, 1]
    only the source pixels the interpolation reads (instead of the whole frame first) changes
    nothing but the work, which for a 640x480 camera is most of it.
    """
    height, width = slot.shape[1:]
    in_h, in_w = image.shape[:2]
    if (in_h, in_w) == (height, width):
        if image.dtype == np.uint8:  # cast and divide in float32, straight into the slot
            np.divide(image.transpose(2, 0, 1), np.float32(255.0), out=slot, dtype=np.float32)
        else:
            slot[...] = _as_unit_float(image).transpose(2, 0, 1)
        return
    rh, rw = resized_shape(in_h, in_w, height, width)
    resized = np.clip(_resize_unit(image, rh, rw), 0.0, 1.0)
    if pad_position == "bottom_right":
        top, left = height - rh, width - rw
    else:
        top, left = (height - rh) // 2, (width - rw) // 2
    slot[:, top : top + rh, left : left + rw] = resized.transpose(2, 0, 1)


def _resize_unit(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """``bilinear_resize(_as_unit_float(image), height, width)``, reading only the source rows
    and columns the interpolation uses (same operations in the same order, per element)."""
    rows_idx, cols_idx, fy, fx = _resize_plan(image.shape[0], image.shape[1], height, width)
    # (2 height, 2 width, C): rows y0 then y1, columns x0 then x1; two takes beat one 2-D
    # fancy index by about 2x
    src = _as_unit_float(np.take(np.take(image, rows_idx, axis=0), cols_idx, axis=1))
    rows = src[:height] * (1.0 - fy) + src[height:] * fy
    return rows[:, :width] * (1.0 - fx) + rows[:, width:] * fx


@functools.lru_cache(maxsize=64)
def _resize_plan(
    in_h: int, in_w: int, height: int, width: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    y0, y1, fy = _bilinear_axis(in_h, height)
    x0, x1, fx = _bilinear_axis(in_w, width)
    plan = (
        np.concatenate((y0, y1)),
        np.concatenate((x0, x1)),
        fy[:, None, None],
        fx[None, :, None],
    )
    for arr in plan:
        arr.flags.writeable = False
    return plan


def _as_unit_float(image: np.ndarray) -> np.ndarray:
    if image.dtype == np.uint8:
        return image.astype(np.float32) / np.float32(255.0)
    if np.issubdtype(image.dtype, np.floating):
        return image.astype(np.float32, copy=False)
    raise ValidationError(
        f"image dtype {image.dtype} is not supported (uint8 RGB expected)", slug="image-invalid"
    )


# -- stretch: antialiased bicubic straight to (height, width), in uint8 ----------------------------
#
# Some VLM image processors (Eagle 2.5 VL's) stretch a frame to the tile size with
# torchvision's bicubic resize on a uint8 tensor, which on the CPU is torch's uint8 antialiased
# kernel (Pillow-SIMD's algorithm): per axis, Pillow's antialiased bicubic weights (a = -0.5,
# support 2 x the downscale factor) rounded to int16 at the largest precision that fits, a
# fixed-point sum rounded and clipped back to uint8, the horizontal pass first. Reproduced here
# bit for bit (tests/test_preprocess.py compares with torch).


def _bicubic_aa_filter(x: np.ndarray) -> np.ndarray:
    a = -0.5
    x = np.abs(x)
    near = ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
    far = (((x - 5.0) * x + 8.0) * x - 4.0) * a
    return np.where(x < 1.0, near, np.where(x < 2.0, far, 0.0))


@functools.lru_cache(maxsize=64)
def _bicubic_aa_axis(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Source indices (out, K), int16-valued weights (out, K) and their precision in bits."""
    scale = in_size / out_size
    support = 2.0 * scale if scale >= 1.0 else 2.0
    invscale = 1.0 / scale if scale >= 1.0 else 1.0
    centers = scale * (np.arange(out_size, dtype=np.float64) + 0.5)
    low = np.maximum((centers - support + 0.5).astype(np.int64), 0)  # C casts truncate
    size = np.minimum((centers + support + 0.5).astype(np.int64), in_size) - low
    taps = np.arange(int(size.max()))
    weights = _bicubic_aa_filter((taps[None, :] + low[:, None] - centers[:, None] + 0.5) * invscale)
    weights = np.where(taps[None, :] < size[:, None], weights, 0.0)
    total = weights.sum(axis=1, keepdims=True)
    weights = np.divide(weights, total, out=weights, where=total != 0.0)
    # the most bits that keep 2x the largest weight inside int16
    w_max = float(weights.max())
    precision = 0
    while precision < 22 and int(0.5 + w_max * (1 << (precision + 1))) < (1 << 15):
        precision += 1
    scaled = weights * float(1 << precision)
    fixed = np.trunc(np.where(scaled < 0.0, scaled - 0.5, scaled + 0.5)).astype(np.int64)
    index = np.minimum(low[:, None] + taps[None, :], in_size - 1)  # padded taps weigh 0
    for arr in (index, fixed):
        arr.flags.writeable = False
    return index, fixed, precision


def _bicubic_aa_rows(image: np.ndarray, out_size: int) -> np.ndarray:
    """One fixed-point pass over the rows (axis 0) of a uint8 (N, M, C) image. Gathering whole
    rows, one tap at a time, is about twice as fast as gathering columns; int32 holds the sums
    (at most 255 x 2**15 x taps)."""
    index, fixed, precision = _bicubic_aa_axis(image.shape[0], out_size)
    weights = fixed.astype(np.int32)
    acc = np.full((out_size, *image.shape[1:]), 1 << (precision - 1), dtype=np.int32)
    for k in range(index.shape[1]):
        acc += image[index[:, k]] * weights[:, k, None, None]
    acc >>= precision  # an arithmetic shift, as in the C kernel
    return np.clip(acc, 0, 255).astype(np.uint8)


def stretch_resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize to exactly (height, width), aspect ratio not kept: torch's uint8 antialiased
    bicubic (``interpolate(mode="bicubic", antialias=True)`` on a uint8 tensor).

    :param image: uint8 (H, W, C); a float image in [0, 1] is rounded to uint8 first.
    :returns: uint8 (height, width, C).
    """
    if image.dtype != np.uint8:
        image = np.clip(np.rint(_as_unit_float(image) * 255.0), 0, 255).astype(np.uint8)
    if image.shape[1] != width:  # horizontal first: its uint8 result feeds the vertical pass
        columns = np.ascontiguousarray(image.transpose(1, 0, 2))
        image = _bicubic_aa_rows(columns, width).transpose(1, 0, 2)
    if image.shape[0] != height:
        image = _bicubic_aa_rows(image, height)
    return np.ascontiguousarray(image)


def check_image(name: str, image: Any) -> None:
    """Raise ValidationError ``image-invalid`` unless ``image`` is a non-empty (H, W, 3) array."""
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3:
        shape = getattr(image, "shape", None)
        raise ValidationError(
            f"camera {name!r}: expected an (H, W, 3) RGB image, got shape {shape}",
            slug="image-invalid",
            field=f"images.{name}",
        )
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValidationError(
            f"camera {name!r}: empty image", slug="image-invalid", field=f"images.{name}"
        )
    if image.dtype != np.uint8 and not np.issubdtype(image.dtype, np.floating):
        raise ValidationError(
            f"camera {name!r}: dtype {image.dtype} is not supported (uint8 RGB expected)",
            slug="image-invalid",
            field=f"images.{name}",
        )


def match_cameras(
    images: Mapping[str, np.ndarray], camera_names: Sequence[str]
) -> list[np.ndarray | None]:
    """Order an observation's images by the artifact's camera names.

    Matching is by name. ``"image"`` (the wire format's single-camera shorthand) stands for the
    first camera unless a camera is really called ``"image"``. A camera the observation lacks is
    ``None``.

    :raises ValidationError: ``unknown-camera`` for a name the artifact does not know,
        ``conflicting-fields`` when the shorthand and the first camera's own name are both
        given (the wire format's slug for two values of one thing).
    """
    names = list(camera_names)
    by_name: dict[str, np.ndarray] = {}
    for key, value in images.items():
        target = key
        if key == SHORTHAND_CAMERA and key not in names and names:
            target = names[0]
            if target in images:
                raise ValidationError(
                    f"both {SHORTHAND_CAMERA!r} and {target!r} given; they are the same camera",
                    slug="conflicting-fields",
                    field=f"images.{key}",
                    details={"fields": [f"images.{key}", f"images.{target}"]},
                )
        if target not in names:
            raise ValidationError(
                f"unknown camera {key!r}; this policy knows {names}",
                slug="unknown-camera",
                field=f"images.{key}",
                details={"known": names},
            )
        by_name[target] = value
    return [by_name.get(name) for name in names]


CameraImages = Mapping[str, np.ndarray] | Sequence[np.ndarray | None]
"""One observation's images: ``{camera name: uint8 HWC RGB}`` (matched by name here), or a
sequence already in the contract's camera order (None for a missing camera) that
``Policy.validate`` matched and checked, which is used as it is."""


def _matched(images: Mapping[str, np.ndarray], camera_names: Sequence[str]) -> list[Any]:
    row = match_cameras(images, camera_names)
    for name, image in zip(camera_names, row, strict=True):
        if image is not None:
            check_image(name, image)
    return row


def preprocess_images(
    batch: Sequence[CameraImages], spec: ImageIO
) -> tuple[np.ndarray, np.ndarray]:
    """Build the ``images`` and ``image_masks`` graph inputs.

    :param batch: one :data:`CameraImages` per observation.
    :param spec: the artifact's image contract.
    :returns: images float32 (B, N, 3, height, width) in the model's range; image_masks bool
        (B, N), False (and the image all ``missing_fill``) for a camera the observation lacks.
    """
    camera_names = spec.cameras
    n = len(camera_names)
    shape = (len(batch), n, 3, spec.height, spec.width)
    masks = np.zeros((len(batch), n), dtype=np.bool_)
    ordered = [
        _matched(obs_images, camera_names) if isinstance(obs_images, Mapping) else obs_images
        for obs_images in batch
    ]
    if all(image is None for row in ordered for image in row):  # a state-only batch
        return np.full(shape, spec.missing_fill, dtype=np.float32), masks
    # Fill [0, 1] values (padding pad_value), then map the whole batch onto the model's range in
    # one pass; missing cameras get their fill afterwards. With range [-1, 1] this is
    # ``x * 2 - 1`` exactly (0 -> -1), as the references compute it.
    low, high = spec.range
    images = np.full(shape, spec.pad_value, dtype=np.float32)
    for b, row in enumerate(ordered):
        for c, image in enumerate(row):
            if image is None:
                continue
            if spec.resize == "stretch":
                stretched = stretch_resize(image, spec.height, spec.width).transpose(2, 0, 1)
                np.divide(stretched, np.float32(255.0), out=images[b, c], dtype=np.float32)
            else:
                _resize_into(image, images[b, c], spec.pad_position)
            masks[b, c] = True
    if (low, high) != (0.0, 1.0):
        np.multiply(images, np.float32(high - low), out=images)
        np.add(images, np.float32(low), out=images)
    images[~masks] = np.float32(spec.missing_fill)
    return images, masks


# --------------------------------------------------------------------------------------------
# Normalization
# --------------------------------------------------------------------------------------------


@attrs.frozen
class NormStats:
    """Normalization statistics of one feature (state or action).

    :ivar mode: ``IDENTITY``, ``QUANTILES`` (q01/q99), ``QUANTILE10`` (q10/q90), ``MIN_MAX``
        (min/max) or ``MEAN_STD`` (mean/std).
    :ivar low: q01 / q10 / min / mean (float32, one value per real dim); None for IDENTITY.
    :ivar high: q99 / q90 / max / std; None for IDENTITY.
    """

    mode: str
    low: np.ndarray | None = None
    high: np.ndarray | None = None

    @property
    def dim(self) -> int | None:
        return None if self.low is None else int(self.low.shape[0])

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> NormStats | None:
        """Read ``{"mode": ..., "q01": [...], "q99": [...]}`` (lists or arrays); None -> None.

        :raises ArtifactError: ``artifact-schema`` for an unknown mode or missing statistics.
        """
        if data is None:
            return None
        mode = str(data.get("mode", "")).upper()
        if mode not in _MODE_STATS:
            raise ArtifactError(
                f"unknown normalization mode {data.get('mode')!r}; known: {sorted(_MODE_STATS)}",
                slug="artifact-schema",
            )
        names = _MODE_STATS[mode]
        if names is None:
            return cls(mode=mode)
        missing = [k for k in names if data.get(k) is None]
        if missing:
            raise ArtifactError(
                f"normalization mode {mode} needs {list(names)}; missing {missing}",
                slug="artifact-schema",
            )
        low = np.asarray(data[names[0]], dtype=np.float32).reshape(-1)
        high = np.asarray(data[names[1]], dtype=np.float32).reshape(-1)
        if low.shape != high.shape:
            raise ArtifactError(
                f"normalization {names[0]} and {names[1]} differ in length "
                f"({low.shape[0]} vs {high.shape[0]})",
                slug="artifact-schema",
            )
        return cls(mode=mode, low=low, high=high)

    @classmethod
    def mean_std(cls, mean: Any, std: Any) -> NormStats:
        """MEAN_STD statistics (an embodiment's ``mean_*`` / ``std_*``)."""
        return cls.from_dict({"mode": "MEAN_STD", "mean": mean, "std": std})  # type: ignore[return-value]

    def to_dict(self) -> dict[str, Any]:
        names = _MODE_STATS[self.mode]
        if names is None:
            return {"mode": self.mode}
        assert self.low is not None and self.high is not None
        return {"mode": self.mode, names[0]: self.low.tolist(), names[1]: self.high.tolist()}


def _coerce_stats(stats: NormStats | Mapping[str, Any] | None) -> NormStats | None:
    if stats is None or isinstance(stats, NormStats):
        return stats
    return NormStats.from_dict(stats)


def _nonzero(denom: np.ndarray) -> np.ndarray:
    return np.where(denom == 0, np.float32(NORM_EPS), denom).astype(np.float32)


def _stats_for(
    values: np.ndarray, stats: NormStats | Mapping[str, Any] | None, what: str
) -> NormStats | None:
    """The statistics to apply to ``values`` (float32); None for IDENTITY or no statistics.

    :raises ValidationError: ``state-length-mismatch`` / ``action-length-mismatch``.
    """
    s = _coerce_stats(stats)
    if s is None or s.mode == "IDENTITY":
        return None
    if s.dim is not None and values.shape[-1] != s.dim:
        raise ValidationError(
            f"{what} has {values.shape[-1]} values but its normalization statistics have "
            f"{s.dim}",
            slug="state-length-mismatch" if what == "state" else "action-length-mismatch",
        )
    return s


def normalize(values: np.ndarray, stats: NormStats | Mapping[str, Any] | None) -> np.ndarray:
    """Map robot units to model units; float32, lerobot's operation order.

    QUANTILES: ``2 (x - q01) / (q99 - q01) - 1`` (a zero denominator becomes eps);
    MEAN_STD: ``(x - mean) / (std + eps)``; IDENTITY or None: unchanged.
    """
    x = np.asarray(values, dtype=np.float32)
    s = _stats_for(x, stats, "state")
    if s is None:
        return x.copy()
    assert s.low is not None and s.high is not None
    if s.mode == "MEAN_STD":
        return (x - s.low) / (s.high + np.float32(NORM_EPS))
    denom = _nonzero(s.high - s.low)
    return np.float32(2.0) * (x - s.low) / denom - np.float32(1.0)


def unnormalize(values: np.ndarray, stats: NormStats | Mapping[str, Any] | None) -> np.ndarray:
    """Map model units back to robot units (the inverse of :func:`normalize`).

    MEAN_STD uses ``y * std + mean`` as lerobot does (it differs from the exact inverse of
    ``(x - mean) / (std + eps)`` by at most ``1e-8 * |y|``).
    """
    y = np.asarray(values, dtype=np.float32)
    s = _stats_for(y, stats, "action")
    if s is None:
        return y.copy()
    assert s.low is not None and s.high is not None
    if s.mode == "MEAN_STD":
        return y * s.high + s.low
    denom = _nonzero(s.high - s.low)
    return (y + np.float32(1.0)) * denom / np.float32(2.0) + s.low


def pad_vector(values: np.ndarray, size: int) -> np.ndarray:
    """Zero-pad the last axis to ``size`` (float32)."""
    x = np.asarray(values, dtype=np.float32)
    if x.shape[-1] > size:
        raise ValidationError(
            f"vector of {x.shape[-1]} values does not fit the model's {size}",
            slug="state-length-mismatch",
        )
    out = np.zeros((*x.shape[:-1], size), dtype=np.float32)
    out[..., : x.shape[-1]] = x
    return out


def unnormalize_actions(
    actions: np.ndarray, action_dim: int, stats: NormStats | Mapping[str, Any] | None
) -> np.ndarray:
    """Keep the first ``action_dim`` dims of (..., max_action_dim) model actions and unnormalize."""
    return unnormalize(np.asarray(actions, dtype=np.float32)[..., :action_dim], stats)


# --------------------------------------------------------------------------------------------
# Prompts
# --------------------------------------------------------------------------------------------


def clean_task(text: str | None) -> str:
    """openpi's task cleaning: strip, ``_`` -> space, newline -> space."""
    return (text or "").strip().replace("_", " ").replace("\n", " ")


def discretize_state(normalized_state: np.ndarray, bins: int = 256) -> np.ndarray:
    """Bin a normalized state over [-1, 1]: ``digitize(x, linspace(-1, 1, bins + 1)[:-1]) - 1``.

    Values below -1 give -1 and values at or above the last edge give ``bins - 1``, as in openpi.
    """
    return np.digitize(np.asarray(normalized_state), bins=_bin_edges(bins)) - 1


@functools.lru_cache(maxsize=8)
def _bin_edges(bins: int) -> np.ndarray:
    edges = np.linspace(-1.0, 1.0, bins + 1)[:-1]
    edges.flags.writeable = False
    return edges


def _task_text(task: str | None, spec: PromptIO) -> str:
    task = task or spec.default_task  # no prompt, or an empty one
    text = clean_task(task) if spec.clean_task else task
    if spec.task_suffix and not text.endswith(spec.task_suffix):
        text += spec.task_suffix
    return text


def build_prompts(
    tasks: Sequence[str | None], normalized_states: np.ndarray | None, spec: PromptIO
) -> list[str]:
    """The prompts the tokenizer sees, for a batch (the states (B, D) are binned in one call).

    :param normalized_states: the normalized, UNPADDED states (B, D); read only when the
        template uses ``{state}``.
    """
    if not spec.uses_state:
        return [spec.template.format(task=_task_text(t, spec)) for t in tasks]
    if normalized_states is None:
        raise ValueError("this prompt template needs the normalized state")
    states = np.asarray(normalized_states, dtype=np.float32)
    if spec.state_pad_to is not None and states.shape[-1] < spec.state_pad_to:
        states = pad_vector(states, spec.state_pad_to)
    assert spec.state_bins is not None  # PromptIO checks it
    rows = discretize_state(states, spec.state_bins).tolist()
    return [
        spec.template.format(task=_task_text(t, spec), state=" ".join(map(str, row)))
        for t, row in zip(tasks, rows, strict=True)
    ]


def build_prompt(task: str | None, normalized_state: np.ndarray | None, spec: PromptIO) -> str:
    """:func:`build_prompts` for one observation (``normalized_state`` 1-D or None)."""
    states = None if normalized_state is None else np.asarray(normalized_state)[None, :]
    return build_prompts([task], states, spec)[0]


# --------------------------------------------------------------------------------------------
# The whole input side
# --------------------------------------------------------------------------------------------


@attrs.frozen(eq=False)
class ModelInputs:
    """The graph inputs for a batch, all batch-first numpy arrays.

    :ivar images: float32 (B, N, 3, H, W) in [-1, 1].
    :ivar image_masks: bool (B, N).
    :ivar tokens: int64 (B, L).
    :ivar token_masks: bool (B, L).
    :ivar state: float32 (B, max_state_dim), normalized and zero-padded.
    :ivar prompts: the prompt strings that were tokenized (for debugging and logs).

    :meth:`feeds` names them as the graphs do; each graph takes the ones it declares.
    """

    images: np.ndarray
    image_masks: np.ndarray
    tokens: np.ndarray
    token_masks: np.ndarray
    state: np.ndarray
    prompts: tuple[str, ...] = ()

    @property
    def batch_size(self) -> int:
        return int(self.state.shape[0])

    def feeds(self) -> dict[str, np.ndarray]:
        return {
            "images": self.images,
            "image_masks": self.image_masks,
            "tokens": self.tokens,
            "token_masks": self.token_masks,
            "state": self.state,
        }


def prepare_inputs(
    *,
    images: Sequence[CameraImages],
    states: Sequence[np.ndarray],
    prompts: Sequence[str | None],
    io: IOSpec,
    max_state_dim: int,
    state_stats: NormStats | Mapping[str, Any] | None,
    tokenizer: Any,
) -> ModelInputs:
    """Everything from raw observations to graph inputs (the runtime and the parity gate use it).

    :param io: the artifact's preprocessing contract.
    :param tokenizer: a :class:`reflex_core.runtime.tokenizer.PromptTokenizer` (anything with
        ``encode(list[str]) -> (tokens, masks)``).
    """
    if not (len(images) == len(states) == len(prompts)):
        raise ValueError("images, states and prompts must have one entry per observation")
    img, img_masks = preprocess_images(images, io.image)
    rows = [np.asarray(s, dtype=np.float32).reshape(-1) for s in states]
    if not rows:
        texts: list[str] = []
        state = np.zeros((0, max_state_dim), np.float32)
    elif len({r.shape[0] for r in rows}) == 1:
        # One (B, D) array: normalization, binning and padding each run once for the batch
        # (elementwise, so every row gets exactly the values it would get alone).
        normalized = normalize(np.stack(rows), state_stats)
        texts = build_prompts(prompts, normalized, io.prompt)
        state = pad_vector(normalized, max_state_dim)
    else:  # rows of different lengths (a caller outside the policy): one at a time
        per_row = [normalize(r, state_stats) for r in rows]
        texts = [build_prompt(p, n, io.prompt) for p, n in zip(prompts, per_row, strict=True)]
        state = np.stack([pad_vector(n, max_state_dim) for n in per_row])
    tokens, token_masks = tokenizer.encode(texts)
    return ModelInputs(img, img_masks, tokens, token_masks, state, tuple(texts))
