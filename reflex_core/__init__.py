"""Reflex: export a VLA policy to ONNX with proven parity, serve it next to the robot."""

__version__ = "0.1.0"
