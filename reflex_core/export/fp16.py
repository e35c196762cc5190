"""fp16 conversion of an exported fp32 graph, keeping the precision-critical parts in fp32.

Automatic fp16 conversion of a pi0 graph is off by ~0.1 (notes/onnx-export-facts.md): the
flow-time embedding computes ``sin/cos(2*pi*t / period)`` with angles up to ~1e3 rad and RoPE
computes ``position * inv_freq``; fp16 cannot resolve either angle. So the conversion keeps in
fp32:

- every node that feeds a ``Sin`` or ``Cos`` (the time embedding from ``t``, the RoPE angles
  from the position ids) and the ``Sin``/``Cos`` themselves;
- the RMSNorm statistics (``Pow`` and ``ReduceMean``): squares of activations overflow fp16.

Everything else (weights and activations) becomes fp16. Graph inputs and outputs keep their fp32
type (``Cast`` nodes at the boundary), so the runtime and the manifest contract do not change.
Float constants outside the fp16 range are clamped to +-65504: the attention mask value
(-2.38e38) would become -inf, and a fully masked (padding) row would softmax to NaN.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from reflex_core.errors import ReflexError

#: Ops whose inputs (transitively) stay fp32, and which stay fp32 themselves.
ANGLE_OPS = frozenset({"Sin", "Cos"})
#: Ops computed in fp32 wherever they are (inputs cast up, outputs cast down).
FP32_OPS = frozenset({"Pow", "ReduceMean"})
FP16_MAX = float(np.finfo(np.float16).max)


class Fp16Error(ReflexError):
    slug = "export-failed"


def _fp16_array(array: np.ndarray) -> np.ndarray:
    return np.clip(array, -FP16_MAX, FP16_MAX).astype(np.float16)


def _fp32_nodes(nodes: list[Any]) -> set[int]:
    """ids of the nodes kept in fp32: ancestors of Sin/Cos plus the FP32_OPS."""
    keep: set[int] = set()
    stack = [n for n in nodes if n.op_type in ANGLE_OPS and n.domain in ("", "ai.onnx")]
    while stack:
        node = stack.pop()
        if id(node) in keep:
            continue
        keep.add(id(node))
        for value in node.inputs:
            if value is not None and value.producer() is not None:
                stack.append(value.producer())
    keep.update(id(n) for n in nodes if n.op_type in FP32_OPS and n.domain in ("", "ai.onnx"))
    return keep


def _cast_node(value: Any, to: Any, name: str, output_name: str | None = None) -> Any:
    """A Cast node of ``value`` to ``to`` (not yet in a graph); its output keeps value's shape
    and is named ``output_name`` (default: the node's own name)."""
    import onnx_ir as ir

    node = ir.Node("", "Cast", [value], attributes=[ir.AttrInt64("to", to)], name=name)
    node.outputs[0].name = output_name or name
    node.outputs[0].type = ir.TensorType(to)
    node.outputs[0].shape = value.shape
    return node


def convert_model_to_fp16(model: Any) -> dict[str, int]:
    """Convert an ``onnx_ir.Model`` in place; returns counts for the build notes."""
    import onnx_ir as ir

    graph = model.graph
    nodes = list(graph)
    for node in nodes:
        for attr in node.attributes.values():
            if attr.type in (ir.AttributeType.GRAPH, ir.AttributeType.GRAPHS):
                raise Fp16Error(
                    f"fp16 conversion does not support control flow ({node.op_type} node "
                    f"{node.name!r}); export at fp32"
                )
    keep = _fp32_nodes(nodes)
    FLOAT, HALF = ir.DataType.FLOAT, ir.DataType.FLOAT16  # noqa: N806

    def is_float(value: Any) -> bool:
        return value is not None and value.dtype == FLOAT

    # 1. Node attributes that name or hold float32 outside the fp32 region.
    for node in nodes:
        if id(node) in keep:
            continue
        if node.op_type == "Cast" and node.attributes.get("to") is not None:
            if node.attributes["to"].value == FLOAT:
                node.attributes["to"] = ir.AttrInt64("to", HALF)
        if node.op_type == "ConstantOfShape" and "value" not in node.attributes:
            # The default value is a float32 zero.
            node.attributes["value"] = ir.AttrTensor("value", ir.tensor(np.zeros(1, np.float16)))
        for key in ("value",):  # Constant, ConstantOfShape
            attr = node.attributes.get(key)
            if attr is not None and attr.type == ir.AttributeType.TENSOR:
                tensor = attr.value
                if tensor.dtype == FLOAT:
                    node.attributes[key] = ir.AttrTensor(
                        key, ir.tensor(_fp16_array(tensor.numpy()), name=tensor.name)
                    )

    # 2. Values produced by fp16 nodes become fp16.
    for node in nodes:
        if id(node) in keep:
            continue
        for out in node.outputs:
            if is_float(out):
                out.type = ir.TensorType(HALF)

    # 3. Initializers: fp16 when only fp16 nodes read them; an fp16 twin when both kinds do.
    converted_inits = 0
    for value in list(graph.initializers.values()):
        if not is_float(value) or value.const_value is None:
            continue
        uses = list(value.uses())
        half_uses = [(n, i) for n, i in uses if id(n) not in keep]
        if not half_uses:
            continue
        half = _fp16_array(value.const_value.numpy())
        if len(half_uses) == len(uses):
            value.const_value = ir.tensor(half, name=value.name)
            value.type = ir.TensorType(HALF)
        else:
            twin = ir.Value(
                name=f"{value.name}__fp16",
                type=ir.TensorType(HALF),
                shape=value.shape,
                const_value=ir.tensor(half, name=f"{value.name}__fp16"),
            )
            graph.register_initializer(twin)
            for n, i in half_uses:
                n.replace_input_with(i, twin)
        converted_inits += 1

    # 4. Casts where an fp32 value meets an fp16 consumer and the other way round.
    casts = 0
    cast_cache: dict[tuple[int, int], Any] = {}

    def cast(value: Any, to: Any, before: Any) -> Any:
        nonlocal casts
        key = (id(value), int(to))
        if key not in cast_cache:
            node = _cast_node(value, to, f"{value.name}__to_{'fp16' if to == HALF else 'fp32'}")
            graph.insert_before(before, node)
            cast_cache[key] = node.outputs[0]
            casts += 1
        return cast_cache[key]

    for node in list(graph):
        if node.op_type == "Cast" and node.name and node.name.endswith(("__to_fp16", "__to_fp32")):
            continue
        wants = FLOAT if id(node) in keep else HALF
        for i, value in enumerate(node.inputs):
            if value is None or value.dtype not in (FLOAT, HALF) or value.dtype == wants:
                continue
            if node.op_type == "Cast":
                continue  # a Cast accepts any input type
            node.replace_input_with(i, cast(value, wants, node))

    # 5. Graph outputs keep fp32.
    for index, value in enumerate(list(graph.outputs)):
        if value.dtype != HALF:
            continue
        name = value.name
        value.name = f"{name}__fp16"
        out = _cast_node(value, FLOAT, f"{name}__to_fp32_output", name)
        graph.append(out)
        graph.outputs[index] = out.outputs[0]
        casts += 1
    graph.sort()
    return {"fp32_nodes": len(keep), "fp16_initializers": converted_inits, "casts": casts}


def convert_program_to_fp16(program: Any) -> dict[str, int]:
    """Convert a ``torch.onnx.ONNXProgram``'s model in place (before it is saved)."""
    return convert_model_to_fp16(program.model)


def count_ops(model: Any, op_types: Iterable[str]) -> int:
    wanted = set(op_types)
    return sum(1 for n in model.graph if n.op_type in wanted)
