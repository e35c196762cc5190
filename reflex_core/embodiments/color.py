"""``cameras[].color_space``: what a camera's frames hold, converted to the RGB a policy takes.

The runtime applies :class:`CameraColors` to every observation's images before preprocessing
(``reflex_core.runtime.policy``), so a served frame and a direct ``policy.infer`` call see the
same pixels. A decoded wire image is an (H, W, 3) array whose channels are in the order the
client wrote them; the declared color space says what that order means:

==========  ====================================================================================
``rgb8``    as is (the default of every preset)
``bgr8``    channels reversed: the camera (OpenCV's default) delivers blue, green, red
``rgba8``   the alpha channel dropped (the wire decoder already drops it from a PNG with alpha;
            a 4-channel array is cut to 3)
``mono8``   a grayscale camera: the frame's luma (ITU-R BT.601, ``0.299 R + 0.587 G + 0.114 B``,
            in 8-bit fixed point for uint8 frames)
            copied to all three channels, so a colour frame from a camera declared mono is
            seen as the mono frame the policy was trained on; (H, W) and (H, W, 1) are widened
==========  ====================================================================================

A color space other than ``rgb8`` on a camera the policy does not have cannot be applied, so
it is refused at load (``embodiment-color-space-unmatched``) rather than ignored.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import numpy as np

from reflex_core.errors import ConfigError

COLOR_SPACES = ("rgb8", "bgr8", "mono8", "rgba8")
SHORTHAND_CAMERA = "image"  # the wire format's single-camera key (the policy's first camera)
_LUMA = np.array([0.299, 0.587, 0.114])


def to_rgb(image: np.ndarray, color_space: str) -> np.ndarray:
    """One frame in ``color_space`` as the (H, W, 3) RGB a policy takes (same dtype)."""
    array = np.asarray(image)
    if color_space == "rgb8":
        return array
    if color_space == "mono8":
        if array.ndim == 3 and array.shape[2] in (3, 4) and array.dtype == np.uint8:
            # BT.601 in 8-bit fixed point (weights 77/150/29 of 256, rounded): exact for gray
            rgb = array[..., :3].astype(np.uint16)
            array = ((77 * rgb[..., 0] + 150 * rgb[..., 1] + 29 * rgb[..., 2] + 128) >> 8).astype(
                np.uint8
            )
        elif array.ndim == 3 and array.shape[2] in (3, 4):
            array = (array[..., :3].astype(np.float64) @ _LUMA).astype(array.dtype)
        elif array.ndim == 3 and array.shape[2] == 1:
            array = array[..., 0]
        if array.ndim != 2:
            raise ValueError(
                f"a mono8 frame must be (H, W), (H, W, 1) or (H, W, 3), got {image.shape}"
            )
        return np.repeat(array[..., None], 3, axis=2)
    if array.ndim != 3 or array.shape[2] not in (3, 4):
        raise ValueError(f"a {color_space} frame must be (H, W, 3) or (H, W, 4), got {array.shape}")
    rgb = array[..., :3]
    if color_space == "bgr8":
        rgb = rgb[..., ::-1]
    elif color_space != "rgba8":
        raise ValueError(f"unknown color space {color_space!r}; known: {', '.join(COLOR_SPACES)}")
    return np.ascontiguousarray(rgb)


@attrs.frozen
class CameraColors:
    """The conversions one policy applies, by its camera name (rgb8 cameras are left out)."""

    by_camera: dict[str, str] = attrs.field(factory=dict)
    first_camera: str | None = None

    @classmethod
    def for_policy(cls, embodiment: Any, camera_names: Sequence[str]) -> CameraColors:
        """The conversions an embodiment declares for a policy's cameras.

        :raises ConfigError: ``embodiment-color-space-unmatched`` when a camera declared other
            than ``rgb8`` is not one of the policy's cameras (the setting could not be applied).
        """
        names = list(camera_names)
        if embodiment is None:
            return cls({}, names[0] if names else None)
        declared = {c.name: c.color_space for c in embodiment.cameras if c.color_space != "rgb8"}
        unmatched = sorted(name for name in declared if name not in names)
        if unmatched:
            raise ConfigError(
                f"embodiment {embodiment.name!r} declares the color space of camera(s) "
                f"{', '.join(f'{n} ({declared[n]})' for n in unmatched)}, which the policy does "
                f"not have (its cameras: {', '.join(names) or 'none'}); the conversion cannot be "
                "applied: name the embodiment's cameras as the policy does",
                slug="embodiment-color-space-unmatched",
                field="cameras",
                details={"unmatched": unmatched, "policy_cameras": names},
            )
        return cls(declared, names[0] if names else None)

    def __bool__(self) -> bool:
        return bool(self.by_camera)

    def convert_ordered(
        self, camera_names: Sequence[str], images: Sequence[np.ndarray | None]
    ) -> list[np.ndarray | None]:
        """Frames in the policy's camera order (None for a missing camera), converted."""
        return [
            image
            if image is None or name not in self.by_camera
            else to_rgb(image, self.by_camera[name])
            for name, image in zip(camera_names, images, strict=True)
        ]

    def apply(self, images: Mapping[str, np.ndarray]) -> Mapping[str, np.ndarray]:
        """``images`` with each declared camera's frame converted (the same mapping when there
        is nothing to convert)."""
        if not self.by_camera or not images:
            return images
        converted = dict(images)
        for key, image in images.items():
            name = key
            if key == SHORTHAND_CAMERA and key not in self.by_camera:
                name = self.first_camera or key
            space = self.by_camera.get(name)
            if space is not None and image is not None:
                converted[key] = to_rgb(image, space)
        return converted
