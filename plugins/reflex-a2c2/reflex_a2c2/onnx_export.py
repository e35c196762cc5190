"""Write an :class:`~reflex_a2c2.head.MLPHead` as an ONNX graph (needs the ``onnx`` package:
``pip install reflex-a2c2[onnx]``). The graph takes raw head inputs and includes the
standardisation and output scaling, so the server feeds both formats the same rows."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from reflex_a2c2.head import ONNX_INPUT, ONNX_OUTPUT, MLPHead

OPSET = 17
IR_VERSION = 8  # old enough for every onnxruntime >= 1.14


def export_onnx(head: MLPHead, path: str | Path) -> Path:
    """Write ``head`` to ``path`` (.onnx) and return the path."""
    try:
        import onnx
        from onnx import TensorProto, helper, numpy_helper
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise RuntimeError("writing an ONNX head needs `pip install reflex-a2c2[onnx]`") from exc

    path = Path(path)
    inits = [
        numpy_helper.from_array(head.x_mean.astype(np.float32), "x_mean"),
        numpy_helper.from_array(head.x_std.astype(np.float32), "x_std"),
        numpy_helper.from_array(head.y_scale.astype(np.float32), "y_scale"),
    ]
    nodes = [
        helper.make_node("Sub", [ONNX_INPUT, "x_mean"], ["centered"]),
        helper.make_node("Div", ["centered", "x_std"], ["h_in"]),
    ]
    current = "h_in"
    last = len(head.weights) - 1
    for i, (w, b) in enumerate(zip(head.weights, head.biases, strict=True)):
        inits.append(numpy_helper.from_array(w.astype(np.float32), f"W{i}"))
        inits.append(numpy_helper.from_array(b.astype(np.float32), f"b{i}"))
        nodes.append(helper.make_node("MatMul", [current, f"W{i}"], [f"mm{i}"]))
        nodes.append(helper.make_node("Add", [f"mm{i}", f"b{i}"], [f"pre{i}"]))
        if i < last:
            nodes.append(helper.make_node("Tanh", [f"pre{i}"], [f"h{i}"]))
            current = f"h{i}"
        else:
            current = f"pre{i}"
    nodes.append(helper.make_node("Mul", [current, "y_scale"], [ONNX_OUTPUT]))
    in_width = int(head.weights[0].shape[0])
    graph = helper.make_graph(
        nodes,
        "reflex_a2c2_head",
        [helper.make_tensor_value_info(ONNX_INPUT, TensorProto.FLOAT, ["n", in_width])],
        [helper.make_tensor_value_info(ONNX_OUTPUT, TensorProto.FLOAT, ["n", head.action_dim])],
        initializer=inits,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="reflex-a2c2"
    )
    model.ir_version = IR_VERSION
    props = {
        "reflex.a2c2.feature_dim": str(head.feature_dim),
        "reflex.a2c2.action_dim": str(head.action_dim),
        "reflex.a2c2.suggested_max_norm": (
            "" if head.suggested_max_norm is None else repr(head.suggested_max_norm)
        ),
    }
    helper.set_model_props(model, props)
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path
