"""A tiny software renderer: the arm as thick line segments, drawn into uint8 RGB arrays.

Enough to give every camera a picture that changes with the arm's pose (the policy sees the
motion; JPEG encoding and the wire get realistic payloads). Orthographic views, no lighting.
"""

from __future__ import annotations

import numpy as np

BACKGROUND_TOP = np.array([196, 210, 226], dtype=np.float32)
BACKGROUND_BOTTOM = np.array([120, 124, 130], dtype=np.float32)
ARM_COLOR = (245, 245, 240)
JOINT_COLOR = (40, 40, 48)
FINGER_COLOR = (230, 120, 30)
CUBE_COLOR = (200, 30, 40)
CUBE_POSITION = np.array([0.55, 0.15, 0.03])


def background(height: int, width: int) -> np.ndarray:
    """A vertical gradient (a floor and a wall, roughly)."""
    t = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]
    rows = BACKGROUND_TOP * (1 - t) + BACKGROUND_BOTTOM * t
    return np.broadcast_to(rows, (height, width, 3)).astype(np.uint8)


def draw_disc(image: np.ndarray, center: np.ndarray, radius: float, color: tuple[int, ...]) -> None:
    h, w = image.shape[:2]
    r = max(1, int(np.ceil(radius)))
    cx, cy = int(round(center[0])), int(round(center[1]))
    y0, y1, x0, x1 = max(0, cy - r), min(h, cy + r + 1), max(0, cx - r), min(w, cx + r + 1)
    if y0 >= y1 or x0 >= x1:
        return
    yy, xx = np.mgrid[y0:y1, x0:x1]
    mask = (yy - center[1]) ** 2 + (xx - center[0]) ** 2 <= radius**2
    image[y0:y1, x0:x1][mask] = color


def draw_segment(
    image: np.ndarray, p0: np.ndarray, p1: np.ndarray, thickness: float, color: tuple[int, ...]
) -> None:
    """A thick segment: discs along it, one per pixel of length."""
    h, w = image.shape[:2]
    length = float(np.hypot(*(p1 - p0)))
    count = max(2, int(length) + 1)
    radius = max(0.5, thickness / 2)
    r = int(np.ceil(radius))
    offsets = np.array(
        [
            (dx, dy)
            for dy in range(-r, r + 1)
            for dx in range(-r, r + 1)
            if dx * dx + dy * dy <= radius**2
        ]
    )
    centers = np.rint(np.linspace(p0, p1, count)).astype(int)
    pixels = (centers[:, None, :] + offsets[None, :, :]).reshape(-1, 2)
    keep = (pixels[:, 0] >= 0) & (pixels[:, 0] < w) & (pixels[:, 1] >= 0) & (pixels[:, 1] < h)
    pixels = pixels[keep]
    image[pixels[:, 1], pixels[:, 0]] = color


class View:
    """An orthographic camera: two world axes onto the image, a centre and a scale.

    :param axes: world axes for image right and image up, e.g. ``(0, 2)`` = x right, z up.
    :param center: the world point at the image centre.
    :param span: world metres across the image width.
    """

    def __init__(self, axes: tuple[int, int], center: np.ndarray, span: float) -> None:
        self.axes = axes
        self.center = np.asarray(center, dtype=np.float64)
        self.span = span

    def project(self, points: np.ndarray, width: int, height: int) -> np.ndarray:
        scale = width / self.span
        rel = np.asarray(points, dtype=np.float64) - self.center
        u = width / 2 + rel[..., self.axes[0]] * scale
        v = height / 2 - rel[..., self.axes[1]] * scale
        return np.stack([u, v], axis=-1)


def render_arm(
    points: np.ndarray,
    finger_opening: float | None,
    hand_rotation: np.ndarray,
    view: View,
    width: int,
    height: int,
) -> np.ndarray:
    """One camera image (height, width, 3) uint8 of the arm (and a cube on the table)."""
    image = np.array(background(height, width))
    scale = width / view.span
    cube = view.project(CUBE_POSITION, width, height)
    draw_disc(image, cube, max(2.0, 0.03 * scale), CUBE_COLOR)
    pixels = view.project(points, width, height)
    thickness = max(2.0, 0.05 * scale)
    for p0, p1 in zip(pixels[:-1], pixels[1:], strict=True):
        draw_segment(image, p0, p1, thickness, ARM_COLOR)
    for p in pixels[:-1]:
        draw_disc(image, p, thickness * 0.6, JOINT_COLOR)
    if finger_opening is not None:
        tip = points[-1]
        side = hand_rotation[:, 1] * (finger_opening + 0.01)
        for sign in (-1.0, 1.0):
            finger = view.project(
                np.stack([tip + sign * side, tip + sign * side + 0.04 * hand_rotation[:, 2]]),
                width,
                height,
            )
            draw_segment(image, finger[0], finger[1], max(1.5, thickness / 2), FINGER_COLOR)
    return image
