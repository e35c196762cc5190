"""Build the monolithic ``policy.onnx`` from the two decomposed graphs.

Exporting the Euler loop from torch means either unrolling it (N copies of the expert: the
export time grows N-fold, ~150 s for the 2-layer tiny pi0 here) or a ``torch.ops.higher_order.scan``,
which torch 2.13 cannot decompose once the step creates a tensor constant (the expert's
attention mask does). So the monolithic mode exports ``vlm_prefix`` and ``expert_denoise`` like the
decomposed mode and joins them at the ONNX level:

    prefix nodes -> Loop(trip_count=N, cond=true, x=noise) { t = times[iter] expanded to (B,);
                    v = expert(x, t, state, prefix outputs); x = x + dt * v } -> actions

The loop body is the exported expert graph, reading the prefix's KV outputs and the expert's
weights from the outer scope, so the file holds each weight once. ``times`` are the same
float32 constants the torch reference uses (the artifact's flow schedule, ``t_start + k*dt``). The parity gate then compares the
composed graph with the torch reference like any other graph.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from reflex_core.errors import ReflexError

#: Graphs whose weights exceed this are saved with external data (``NAME.onnx.data``). Protobuf
#: caps one file at 2 GB, and saving inline builds the whole proto and then its serialized bytes
#: in memory (two extra copies of the weights, measured: +1.9 GB for a 0.94 GB graph), while
#: external data is streamed tensor by tensor (+0). So every graph above a modest size streams:
#: at 512 MB, real SmolVLA's 0.4 GB expert was saved inline and set the export's peak.
EXTERNAL_DATA_BYTES = 64 * 1024 * 1024
EXPERT_SCOPE = "expert/"


class ComposeError(ReflexError):
    slug = "export-failed"


def _initializer(ir: Any, name: str, array: np.ndarray) -> Any:
    tensor = ir.tensor(array, name=name)
    return ir.Value(
        name=name, type=ir.TensorType(tensor.dtype), shape=ir.Shape(array.shape), const_value=tensor
    )


def _all_values(graph: Any) -> list[Any]:
    """Every value a graph (and its subgraphs) defines, except its own inputs."""
    values: list[Any] = list(graph.initializers.values())
    for node in graph.all_nodes():
        values.extend(node.outputs)
    return values


def initializer_bytes(model: Any) -> int:
    """Bytes of an ``onnx_ir.Model``'s weights (lazy tensors are not read)."""
    return sum(
        int(v.const_value.nbytes)
        for v in model.graph.initializers.values()
        if v.const_value is not None
    )


def wants_external_data(model: Any, choice: bool | None) -> bool:
    """``choice`` when given (True/False), else external data above :data:`EXTERNAL_DATA_BYTES`."""
    return choice if choice is not None else initializer_bytes(model) > EXTERNAL_DATA_BYTES


def compose_monolithic(
    prefix_path: Path,
    expert_path: Path,
    out_path: Path,
    *,
    times: list[float],
    dt: float,
    external_data: bool | None = None,
) -> str | None:
    """Write ``out_path`` (inputs: prefix inputs + step-only inputs + noise; outputs: actions,
    and features when the prefix has them).

    :param times: the flow time of each Euler step (the artifact's ``FlowIO.times``).
    :param dt: the step size (negative from noise at t=1 to actions at t=0).
    :returns: the external data file name written beside ``out_path``, or None.
    """
    import onnx_ir as ir

    prefix = ir.load(str(prefix_path))
    expert = ir.load(str(expert_path))
    if prefix.opset_imports.get("") != expert.opset_imports.get(""):
        raise ComposeError(
            f"cannot join graphs of different opsets ({prefix.opset_imports} vs "
            f"{expert.opset_imports})"
        )
    main = prefix.graph
    prefix_outputs = {v.name: v for v in main.outputs}
    expert_inputs = {v.name: v for v in expert.graph.inputs}
    if "x_t" not in expert_inputs or len(expert.graph.outputs) != 1:
        raise ComposeError("the expert graph must take x_t and return one velocity output")
    x_spec = expert_inputs["x_t"]

    # Unique names: the expert's values move into the prefix graph's scope.
    for value in _all_values(expert.graph):
        if value.name:
            value.name = EXPERT_SCOPE + value.name
    for node in expert.graph.all_nodes():
        if node.name:
            node.name = EXPERT_SCOPE + node.name
    expert_weights = list(expert.graph.initializers.values())
    expert.graph.initializers.clear()
    for value in expert_weights:
        main.register_initializer(value)

    # Loop body inputs: iteration number, condition, the carried action chunk.
    iteration = ir.Value(
        name="euler/iteration", type=ir.TensorType(ir.DataType.INT64), shape=ir.Shape([])
    )
    cond_in = ir.Value(
        name="euler/cond_in", type=ir.TensorType(ir.DataType.BOOL), shape=ir.Shape([])
    )
    x_in = ir.Value(name="euler/x", type=x_spec.type, shape=x_spec.shape)
    dtype = x_spec.dtype.numpy()
    num_steps = len(times)
    times_value = _initializer(ir, "euler/times", np.asarray(times, dtype=np.float32))
    dt_value = _initializer(ir, "euler/dt", np.asarray(dt, dtype=dtype))
    trip_count = _initializer(ir, "euler/trip_count", np.asarray(num_steps, dtype=np.int64))
    cond_true = _initializer(ir, "euler/cond", np.asarray(True))
    for value in (times_value, dt_value, trip_count, cond_true):
        main.register_initializer(value)

    t_scalar = ir.Node("", "Gather", [times_value, iteration], name="euler/t_scalar")
    batch_shape = ir.Node(
        "",
        "Shape",
        [x_in],
        attributes=[ir.AttrInt64("start", 0), ir.AttrInt64("end", 1)],
        name="euler/batch_shape",
    )
    t_batch = ir.Node("", "Expand", [t_scalar.outputs[0], batch_shape.outputs[0]], name="euler/t")
    body_head = [t_scalar, batch_shape, t_batch]

    main_inputs: list[Any] = []
    prefix_inputs = {v.name: v for v in main.inputs}
    replacements: dict[str, Any] = {"x_t": x_in, "t": t_batch.outputs[0]}
    for name, value in expert_inputs.items():
        if name in replacements:
            continue
        if name in prefix_outputs:
            replacements[name] = prefix_outputs[name]
        elif name in prefix_inputs:  # an input both graphs take (SmolVLA-like state) is shared
            replacements[name] = prefix_inputs[name]
        else:  # an input only the expert takes (pi0's state) becomes a graph input
            new_input = ir.Value(name=name, type=value.type, shape=value.shape)
            main_inputs.append(new_input)
            replacements[name] = new_input
    if "t" in expert_inputs and expert_inputs["t"].dtype != ir.DataType.FLOAT:
        raise ComposeError("the expert's t input must be float32")
    for name, value in expert_inputs.items():
        value.replace_all_uses_with(replacements[name])

    velocity = expert.graph.outputs[0]
    expert_nodes = list(expert.graph)
    expert.graph.outputs.clear()
    expert.graph.remove(expert_nodes)
    scaled = ir.Node("", "Mul", [velocity, dt_value], name="euler/dt_v")
    x_next = ir.Node("", "Add", [x_in, scaled.outputs[0]], name="euler/x_next")
    cond_out = ir.Node("", "Identity", [cond_in], name="euler/cond_out")
    for node in (*body_head, scaled, x_next, cond_out):
        # Unnamed values get "val_N" names per graph, which would clash with the outer graph's.
        node.outputs[0].name = str(node.name)
    body = ir.Graph(
        [iteration, cond_in, x_in],
        [cond_out.outputs[0], x_next.outputs[0]],
        nodes=[*body_head, *expert_nodes, scaled, x_next, cond_out],
        name="euler_step",
    )
    noise = ir.Value(name="noise", type=x_spec.type, shape=x_spec.shape)
    main_inputs.append(noise)
    loop = ir.Node(
        "",
        "Loop",
        [trip_count, cond_true, noise],
        attributes=[ir.AttrGraph("body", body)],
        num_outputs=1,
        name="euler_loop",
    )
    actions = loop.outputs[0]
    actions.name = "actions"
    actions.type = x_spec.type
    actions.shape = x_spec.shape
    main.append(loop)
    main.inputs.extend(main_inputs)
    features = prefix_outputs.get("features")
    main.outputs.clear()
    main.outputs.append(actions)
    if features is not None:
        main.outputs.append(features)
    for key, function in expert.functions.items():
        prefix.functions.setdefault(key, function)
    for domain, version in expert.opset_imports.items():
        prefix.opset_imports.setdefault(domain, version)
    main.name = "policy"

    use_external = wants_external_data(prefix, external_data)
    data_name = out_path.name + ".data"
    if use_external:
        ir.save(prefix, str(out_path), external_data=data_name)
        return data_name
    ir.save(prefix, str(out_path))
    return None
