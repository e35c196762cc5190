"""Mixed precision on an OpenVINO model: what stays fp32, and static int8 for the linear layers.

bf16 (:func:`keep_fp32`): the matrix products run in bf16 and everything the accuracy needs stays
fp32 by OpenVINO's own marker (the ``disable_fp16_compression`` runtime attribute, which the
CPU plugin's bf16 pass honours too):

- the sinusoidal embeddings: every ``Sin``/``Cos`` and all that feeds them (the flow-time
  embedding reaches angles of ~1e3 rad, RoPE position angles; bf16 has 8 mantissa bits);
- normalizations: ``MVN`` (LayerNorm) and the RMSNorm statistics (``Power``, ``ReduceMean``,
  ``Sqrt``, ``Divide``);
- ``Softmax`` and the ``Exp`` / ``ReduceSum`` of any hand-written one.

The Euler update ``x + dt v`` runs in the runtime, in numpy fp32.

int8 (:func:`quantize_int8`): every ``MatMul`` with a constant weight gets a ``FakeQuantize`` on
its weight (per output channel, symmetric, 255 levels) and on its activation (per tensor,
symmetric, 256 levels, the range calibrated on generated observations); OpenVINO's low-precision
pass turns each pair into an int8 matrix product. Not quantized: products of two activations
(attention scores and values), the linear layers whose input comes from a sinusoidal embedding
(the time MLP), and thin layers (``min(K, N) <= thin``: the action/state projections), which
cost little and carry the action's units.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

#: op types kept fp32 under bf16
KEEP_FP32_TYPES = frozenset(
    {"Sin", "Cos", "Softmax", "MVN", "Power", "ReduceMean", "Sqrt", "Divide", "Exp", "ReduceSum"}
)
#: the runtime attribute OpenVINO's precision passes (fp16 and the CPU's bf16) skip a node by
FP32_MARK = "disable_fp16_compression_0"


def _producers(node: Any) -> Iterable[Any]:
    for value in node.input_values():
        yield value.get_node()


def sinusoid_inputs(model: Any) -> set[str]:
    """Friendly names of every node feeding a ``Sin``/``Cos`` (constants excluded)."""
    seen: set[str] = set()
    stack = [op for op in model.get_ops() if op.get_type_name() in ("Sin", "Cos")]
    while stack:
        node = stack.pop()
        for parent in _producers(node):
            name = parent.get_friendly_name()
            kind = parent.get_type_name()
            if name in seen or kind in ("Constant", "Parameter"):
                continue
            seen.add(name)
            stack.append(parent)
    return seen


def keep_fp32(model: Any) -> list[str]:
    """Mark the precision-sensitive nodes of ``model`` fp32; returns their friendly names."""
    upstream = sinusoid_inputs(model)
    marked = []
    for op in model.get_ops():
        name = op.get_friendly_name()
        if op.get_type_name() in KEEP_FP32_TYPES or name in upstream:
            op.get_rt_info()[FP32_MARK] = ""
            marked.append(name)
    return marked


def _is_weight(node: Any) -> bool:
    """A constant 2-D weight, possibly behind a Convert (fp16-compressed IR)."""
    if node.get_type_name() == "Convert":
        node = node.input_value(0).get_node()
    return node.get_type_name() == "Constant" and len(node.get_output_partial_shape(0)) == 2


def _after_sinusoid(model: Any) -> set[str]:
    """MatMuls reached from a Sin/Cos output before any other MatMul (the time MLP's input)."""
    hit: set[str] = set()
    stack = [op for op in model.get_ops() if op.get_type_name() in ("Sin", "Cos")]
    seen: set[str] = set()
    while stack:
        node = stack.pop()
        for output in node.outputs():
            for target in output.get_target_inputs():
                child = target.get_node()
                name = child.get_friendly_name()
                if name in seen:
                    continue
                seen.add(name)
                if child.get_type_name() == "MatMul":
                    hit.add(name)
                else:
                    stack.append(child)
    return hit


def weight_matmuls(model: Any, *, thin: int = 64) -> list[Any]:
    """The MatMuls :func:`quantize_int8` quantizes, in the model's topological order."""
    skip = _after_sinusoid(model)
    chosen = []
    for op in model.get_ordered_ops():
        if op.get_type_name() != "MatMul" or op.get_friendly_name() in skip:
            continue
        if not _is_weight(op.input_value(1).get_node()):
            continue
        shape = [d.get_length() for d in op.input_value(1).get_partial_shape()]
        if min(shape) <= thin:
            continue
        chosen.append(op)
    return chosen


def activation_outputs(matmuls: Iterable[Any]) -> list[Any]:
    """The distinct activation outputs feeding ``matmuls`` (q/k/v share one)."""
    outputs: dict[tuple[str, int], Any] = {}
    for op in matmuls:
        value = op.input_value(0)
        outputs.setdefault((value.get_node().get_friendly_name(), value.get_index()), value)
    return list(outputs.values())


def output_key(value: Any) -> str:
    return f"{value.get_node().get_friendly_name()}:{value.get_index()}"


class RangeObserver:
    """Running ``max |x|`` of the calibration outputs (the extra outputs appended to a model)."""

    def __init__(self, keys: list[str], first_extra: int) -> None:
        self.keys = keys
        self.first_extra = first_extra
        self.absmax: dict[str, float] = dict.fromkeys(keys, 0.0)
        self.runs = 0

    def __call__(self, outputs: list[np.ndarray]) -> None:
        self.runs += 1
        for key, array in zip(self.keys, outputs[self.first_extra :], strict=True):
            value = float(np.max(np.abs(array))) if array.size else 0.0
            if np.isfinite(value):
                self.absmax[key] = max(self.absmax[key], value)


def add_calibration_outputs(model: Any, *, thin: int = 64) -> RangeObserver:
    """Append the activation inputs of the quantizable MatMuls to ``model``'s outputs."""
    first_extra = len(model.outputs)
    values = activation_outputs(weight_matmuls(model, thin=thin))
    if values:
        model.add_outputs(values)
    return RangeObserver([output_key(v) for v in values], first_extra)


def _fake_quantize(value: Any, low: np.ndarray, high: np.ndarray, levels: int) -> Any:
    import openvino.opset13 as ops

    low_c = ops.constant(low.astype(np.float32))
    high_c = ops.constant(high.astype(np.float32))
    return ops.fake_quantize(value, low_c, high_c, low_c, high_c, levels)


def quantize_int8(model: Any, absmax: Mapping[str, float], *, thin: int = 64) -> list[str]:
    """Insert weight and activation FakeQuantize pairs; returns the quantized MatMuls' names.

    A MatMul whose activation range was never observed (or is zero) stays fp32.
    """
    done = []
    for op in weight_matmuls(model, thin=thin):
        act = op.input_value(0)
        amax = float(absmax.get(output_key(act), 0.0))
        if not amax > 0:
            continue
        weight_node = op.input_value(1).get_node()
        weights = weight_node.get_data() if weight_node.get_type_name() == "Constant" else None
        if weights is None:
            continue
        weights = np.asarray(weights, dtype=np.float32)
        transpose_b = bool(op.get_attributes().get("transpose_b", False))
        # output channels: rows of W (N, K) with transpose_b, columns of W (K, N) without
        axis = 1 if transpose_b else 0
        wmax = np.max(np.abs(weights), axis=axis, keepdims=True)
        wmax = np.where(wmax > 0, wmax, 1.0).astype(np.float32)
        scale = np.float32(amax)
        fq_act = _fake_quantize(act, np.array(-scale), np.array(scale * 127.0 / 128.0), 256)
        fq_w = _fake_quantize(op.input_value(1), -wmax, wmax, 255)
        op.input(0).replace_source_output(fq_act.output(0))
        op.input(1).replace_source_output(fq_w.output(0))
        done.append(op.get_friendly_name())
    model.validate_nodes_and_infer_types()
    return done
