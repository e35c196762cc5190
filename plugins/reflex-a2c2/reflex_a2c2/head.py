"""The correction head: a small MLP from head inputs (see :mod:`reflex_a2c2.inputs`) to a
per-action residual, as NumPy weights (``.npz``) or an ONNX graph (``.onnx``).

``.npz`` layout (``format = "reflex-a2c2-mlp"``, ``version = 1``)::

    W0, b0, W1, b1, ..., W{L-1}, b{L-1}   layer weights (in, out) and biases (out,)
    x_mean, x_std                         input standardisation, (in,)
    y_scale                               residual = network output * y_scale, (D,)
    feature_dim, action_dim, n_layers     ints
    activation                            "tanh" (hidden layers; the last layer is linear)
    suggested_max_norm                    1.5 x the 99th percentile of the training residual
                                          norms; the default bound when none is configured

``.onnx`` layout: one input ``x`` (N, F + 3D + 2) float32 of raw (unstandardised) head inputs,
one output ``residual`` (N, D) float32; metadata props ``reflex.a2c2.feature_dim``,
``reflex.a2c2.action_dim`` and ``reflex.a2c2.suggested_max_norm``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import attrs
import numpy as np

from reflex_a2c2.inputs import EXTRA_COLUMNS, input_width
from reflex_core.errors import ConfigError

FORMAT = "reflex-a2c2-mlp"
VERSION = 1
ONNX_INPUT = "x"
ONNX_OUTPUT = "residual"


class CorrectionHead(Protocol):
    feature_dim: int
    action_dim: int
    suggested_max_norm: float | None

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Raw head inputs (N, F + 3D + 2) -> residuals (N, D) in action units."""
        ...


def _tanh(x: np.ndarray) -> np.ndarray:
    return np.tanh(x)


@attrs.define(eq=False)
class MLPHead:
    """A tanh MLP with input standardisation and output scaling, evaluated in NumPy."""

    weights: list[np.ndarray]
    biases: list[np.ndarray]
    x_mean: np.ndarray
    x_std: np.ndarray
    y_scale: np.ndarray
    feature_dim: int
    action_dim: int
    suggested_max_norm: float | None = None

    def __attrs_post_init__(self) -> None:
        expected_in = input_width(self.feature_dim, self.action_dim)
        if not self.weights or len(self.weights) != len(self.biases):
            raise ValueError("an MLP head needs as many bias vectors as weight matrices (>= 1)")
        if self.weights[0].shape[0] != expected_in or self.x_mean.shape != (expected_in,):
            raise ValueError(
                f"head input width {self.weights[0].shape[0]} does not match "
                f"feature_dim={self.feature_dim}, action_dim={self.action_dim} "
                f"(expected {expected_in})"
            )
        if self.weights[-1].shape[1] != self.action_dim or self.y_scale.shape != (self.action_dim,):
            raise ValueError("head output width does not match action_dim")
        for w, b, w_next in zip(self.weights, self.biases, [*self.weights[1:], None], strict=True):
            if b.shape != (w.shape[1],) or (w_next is not None and w_next.shape[0] != w.shape[1]):
                raise ValueError("inconsistent layer shapes in the MLP head")

    @property
    def hidden_sizes(self) -> list[int]:
        return [w.shape[1] for w in self.weights[:-1]]

    def forward_normalized(self, z: np.ndarray) -> np.ndarray:
        """Standardised inputs -> network output (before ``y_scale``)."""
        h = z
        for w, b in zip(self.weights[:-1], self.biases[:-1], strict=True):
            h = _tanh(h @ w + b)
        return h @ self.weights[-1] + self.biases[-1]

    def predict(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        z = (x - self.x_mean) / self.x_std
        return (self.forward_normalized(z) * self.y_scale).astype(np.float32)

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        arrays: dict[str, np.ndarray] = {
            "format": np.array(FORMAT),
            "version": np.array(VERSION),
            "n_layers": np.array(len(self.weights)),
            "feature_dim": np.array(self.feature_dim),
            "action_dim": np.array(self.action_dim),
            "activation": np.array("tanh"),
            "x_mean": self.x_mean.astype(np.float32),
            "x_std": self.x_std.astype(np.float32),
            "y_scale": self.y_scale.astype(np.float32),
            "suggested_max_norm": np.array(
                np.nan if self.suggested_max_norm is None else self.suggested_max_norm
            ),
        }
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            arrays[f"W{i}"] = w.astype(np.float32)
            arrays[f"b{i}"] = b.astype(np.float32)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as f:  # np.savez would append .npz to a name without it
            np.savez(f, **arrays)
        return path

    @classmethod
    def load(cls, path: str | Path) -> MLPHead:
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as data:
                if str(data["format"]) != FORMAT or int(data["version"]) != VERSION:
                    raise ValueError(
                        f"not a {FORMAT} v{VERSION} file "
                        f"(format={data['format']!s}, version={int(data['version'])})"
                    )
                if str(data["activation"]) != "tanh":
                    raise ValueError(f"unsupported activation {data['activation']!s}")
                n = int(data["n_layers"])
                max_norm = float(data["suggested_max_norm"])
                return cls(
                    weights=[np.asarray(data[f"W{i}"], np.float32) for i in range(n)],
                    biases=[np.asarray(data[f"b{i}"], np.float32) for i in range(n)],
                    x_mean=np.asarray(data["x_mean"], np.float32),
                    x_std=np.asarray(data["x_std"], np.float32),
                    y_scale=np.asarray(data["y_scale"], np.float32),
                    feature_dim=int(data["feature_dim"]),
                    action_dim=int(data["action_dim"]),
                    suggested_max_norm=None if np.isnan(max_norm) else max_norm,
                )
        except (OSError, KeyError, ValueError) as exc:
            raise ConfigError(
                f"cannot load A2C2 head {path}: {exc}", slug="a2c2-head-invalid", field="a2c2-head"
            ) from exc


class OnnxHead:
    """A head exported to ONNX, run with onnxruntime on the CPU (it is tiny)."""

    def __init__(self, path: str | Path) -> None:
        import onnxruntime as ort

        path = Path(path)
        try:
            options = ort.SessionOptions()
            options.intra_op_num_threads = 1  # a few hundred FLOPs per row: threads only cost
            self._session = ort.InferenceSession(
                str(path), options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own exception types
            raise ConfigError(
                f"cannot load A2C2 head {path}: {exc}", slug="a2c2-head-invalid", field="a2c2-head"
            ) from exc
        inputs = self._session.get_inputs()
        outputs = self._session.get_outputs()
        if [i.name for i in inputs] != [ONNX_INPUT] or ONNX_OUTPUT not in [o.name for o in outputs]:
            raise ConfigError(
                f"A2C2 head {path} must have one input {ONNX_INPUT!r} and an output "
                f"{ONNX_OUTPUT!r}",
                slug="a2c2-head-invalid",
                field="a2c2-head",
            )
        props = self._session.get_modelmeta().custom_metadata_map
        in_width = inputs[0].shape[-1]
        out_width = next(o for o in outputs if o.name == ONNX_OUTPUT).shape[-1]
        if "reflex.a2c2.action_dim" in props:
            self.action_dim = int(props["reflex.a2c2.action_dim"])
        elif isinstance(out_width, int):
            self.action_dim = out_width
        else:
            raise ConfigError(
                f"A2C2 head {path}: cannot tell its action dimension",
                slug="a2c2-head-invalid",
                field="a2c2-head",
            )
        if "reflex.a2c2.feature_dim" in props:
            self.feature_dim = int(props["reflex.a2c2.feature_dim"])
        elif isinstance(in_width, int):
            self.feature_dim = in_width - 3 * self.action_dim - EXTRA_COLUMNS
        else:
            raise ConfigError(
                f"A2C2 head {path}: cannot tell its feature dimension",
                slug="a2c2-head-invalid",
                field="a2c2-head",
            )
        norm = props.get("reflex.a2c2.suggested_max_norm")
        self.suggested_max_norm = float(norm) if norm not in (None, "", "nan") else None

    def predict(self, x: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=np.float32)
        (residual,) = self._session.run([ONNX_OUTPUT], {ONNX_INPUT: x})
        return np.asarray(residual, dtype=np.float32)


def load_head(path: str | Path) -> CorrectionHead:
    """A head from ``.npz`` (NumPy) or ``.onnx`` (onnxruntime), by extension."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(
            f"A2C2 head {path} does not exist", slug="a2c2-head-missing", field="a2c2-head"
        )
    suffix = path.suffix.lower()
    if suffix == ".npz":
        return MLPHead.load(path)
    if suffix == ".onnx":
        return OnnxHead(path)
    raise ConfigError(
        f"A2C2 head {path}: expected a .npz or .onnx file", slug="a2c2-head-invalid",
        field="a2c2-head",
    )  # fmt: skip
