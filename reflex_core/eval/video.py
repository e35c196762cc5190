"""Episode videos: the env's render, with action-chunk boundaries and fallbacks marked.

Every frame carries a caption (tick, simulated time, chunks so far); a frame during which a new
chunk joined the action queue gets a yellow border, one whose chunk was a fallback (the deadline
wedge answered instead of the model) a red border and ``FALLBACK``. A strip along the bottom is
the episode's timeline: a tick mark per chunk (red for fallbacks), the cursor at this frame.

MP4 needs ``imageio`` with ``imageio-ffmpeg`` (``reflex-core[eval]``); GIF needs only Pillow.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import attrs
import numpy as np

CHUNK_COLOR = (255, 210, 0)
FALLBACK_COLOR = (230, 30, 30)
SUCCESS_COLOR = (40, 200, 80)


def default_format() -> str:
    """``mp4`` when an ffmpeg writer is installed, else ``gif``."""
    have = all(importlib.util.find_spec(m) is not None for m in ("imageio", "imageio_ffmpeg"))
    return "mp4" if have else "gif"


@attrs.define
class VideoRecorder:
    """Collects annotated frames for one episode and writes them."""

    path: Path
    fps: float
    total_ticks: int
    frames: list[np.ndarray] = attrs.field(factory=list)
    frame_ticks: list[int] = attrs.field(factory=list)
    chunk_ticks: list[int] = attrs.field(factory=list)
    fallback_ticks: list[int] = attrs.field(factory=list)

    def chunk(self, tick: int, fallback: bool) -> None:
        self.chunk_ticks.append(tick)
        if fallback:
            self.fallback_ticks.append(tick)

    def frame(self, image: np.ndarray, tick: int, frequency_hz: float, success: bool) -> None:
        previous = self.frame_ticks[-1] if self.frame_ticks else -1
        boundary = any(previous < t <= tick for t in self.chunk_ticks)
        fallback = any(previous < t <= tick for t in self.fallback_ticks)
        self.frames.append(
            annotate(
                image,
                tick=tick,
                seconds=tick / frequency_hz,
                chunks=len(self.chunk_ticks),
                boundary=boundary,
                fallback=fallback,
                success=success,
                timeline=(self.chunk_ticks, self.fallback_ticks, self.total_ticks),
            )
        )
        self.frame_ticks.append(tick)

    def write(self) -> Path | None:
        if not self.frames:
            return None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.suffix == ".mp4":
            import imageio.v2 as imageio

            with imageio.get_writer(
                self.path, fps=self.fps, codec="libx264", quality=7, macro_block_size=8
            ) as writer:
                for frame in self.frames:
                    writer.append_data(frame)
        else:
            from PIL import Image

            images = [Image.fromarray(f) for f in self.frames]
            images[0].save(
                self.path,
                save_all=True,
                append_images=images[1:],
                duration=max(20, round(1000 / self.fps)),
                loop=0,
            )
        return self.path


def annotate(
    image: np.ndarray,
    *,
    tick: int,
    seconds: float,
    chunks: int,
    boundary: bool,
    fallback: bool,
    success: bool,
    timeline: tuple[list[int], list[int], int],
) -> np.ndarray:
    """One video frame: the render with a caption, a border for chunk events and a timeline."""
    from PIL import Image, ImageDraw

    frame = Image.fromarray(np.ascontiguousarray(image[..., :3]).astype(np.uint8))
    width, height = frame.size
    strip = 10
    canvas = Image.new("RGB", (width, height + 14 + strip), (20, 20, 20))
    canvas.paste(frame, (0, 0))
    draw = ImageDraw.Draw(canvas)
    if boundary or fallback:
        color = FALLBACK_COLOR if fallback else CHUNK_COLOR
        for i in range(3):
            draw.rectangle([i, i, width - 1 - i, height - 1 - i], outline=color)
    caption = f"tick {tick}  t={seconds:.2f}s  chunks {chunks}"
    if fallback:
        caption += "  FALLBACK"
    if success:
        caption += "  SUCCESS"
    draw.text((3, height + 1), caption, fill=(240, 240, 240))
    chunk_ticks, fallback_ticks, total = timeline
    top = height + 14
    draw.rectangle([0, top, width - 1, top + strip - 1], fill=(50, 50, 50))
    scale = (width - 1) / max(1, total)
    for t in chunk_ticks:
        x = round(t * scale)
        draw.line([x, top, x, top + strip - 1], fill=CHUNK_COLOR)
    for t in fallback_ticks:
        x = round(t * scale)
        draw.line([x, top, x, top + strip - 1], fill=FALLBACK_COLOR)
    cursor = round(tick * scale)
    draw.rectangle(
        [max(0, cursor - 1), top, min(width - 1, cursor + 1), top + strip - 1],
        fill=SUCCESS_COLOR if success else (255, 255, 255),
    )
    return np.asarray(canvas)
