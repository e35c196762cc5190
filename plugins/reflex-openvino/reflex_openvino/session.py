"""An OpenVINO compiled model behind the onnxruntime-session surface the runners use.

The runners (``reflex_core.runtime.runners``) call ``get_inputs()`` / ``get_outputs()`` (items with
``.name``), ``run(output_names, feeds)`` and ``get_providers()``. Each thread gets its own infer
request (``Policy.infer`` is called from the server's pool), inputs are shared with OpenVINO
without a copy, and outputs are copied out of the request's buffers, so the arrays a caller keeps
are never overwritten by the next call.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import numpy as np


@attrs.frozen
class Port:
    """What ``session.get_inputs()`` items look like to the runtime (``.name``)."""

    name: str
    shape: tuple[Any, ...] = ()
    type: str = ""


def _port_name(port: Any, index: int) -> str:
    names = sorted(port.get_names())
    return names[0] if names else f"output_{index}"


def output_names(model: Any) -> list[str]:
    """The graph's own output names, in order (a tensor may carry several names: the ONNX
    frontend names each Result ``<graph output>/sink_port_0``)."""
    names = []
    for i, result in enumerate(model.get_results()):
        wanted = result.get_friendly_name().split("/sink_port_")[0]
        known = result.output(0).get_names()
        names.append(wanted if wanted in known else _port_name(result.output(0), i))
    return names


class OVSession:
    """One compiled OpenVINO model with ``run(output_names, feeds) -> list[np.ndarray]``.

    :param compiled: an ``openvino.CompiledModel``.
    :param label: what ``get_providers()`` reports (``/health`` and ``reflex doctor`` show it),
        e.g. ``openvino-bf16 (CPU, bf16)``.
    :param names: the output names to expose (:func:`output_names` of the model), in order.
    :param observer: called as ``observer(outputs)`` with every output of every run, in the
        compiled model's order (views, valid during the call); calibration uses it to see the
        outputs it appended.
    """

    def __init__(
        self,
        compiled: Any,
        label: str,
        observer: Any = None,
        names: list[str] | None = None,
    ) -> None:
        self.compiled = compiled
        self.label = label
        self.observer = observer
        self._inputs = [
            Port(_port_name(p, i), tuple(str(d) for d in p.get_partial_shape()))
            for i, p in enumerate(compiled.inputs)
        ]
        given = list(names or [])
        self._outputs = [
            Port(given[i] if i < len(given) else _port_name(p, i))
            for i, p in enumerate(compiled.outputs)
        ]
        self._output_ports = {
            port.name: p for port, p in zip(self._outputs, compiled.outputs, strict=True)
        }
        self._local = threading.local()

    def get_inputs(self) -> list[Port]:
        return list(self._inputs)

    def get_outputs(self) -> list[Port]:
        return list(self._outputs)

    def get_providers(self) -> list[str]:
        return [self.label]

    def _request(self) -> Any:
        request = getattr(self._local, "request", None)
        if request is None:
            request = self._local.request = self.compiled.create_infer_request()
        return request

    def run(self, output_names: Sequence[str] | None, feeds: Mapping[str, Any]) -> list[np.ndarray]:
        request = self._request()
        inputs = {name: np.ascontiguousarray(value) for name, value in feeds.items()}
        request.infer(inputs, share_inputs=True, share_outputs=True)
        names = [p.name for p in self._outputs] if not output_names else list(output_names)
        if self.observer is not None:
            self.observer([request.get_tensor(port).data for port in self.compiled.outputs])
        return [np.array(request.get_tensor(self._output_ports[n]).data, copy=True) for n in names]
