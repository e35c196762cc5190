"""Reflex: export a VLA policy to ONNX with proven parity, serve it next to the robot."""

__version__ = "0.1.0"

from reflex_core import _moved  # noqa: E402 (after the version: the old paths resolve from here)

_moved.install()
