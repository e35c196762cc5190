"""The monolithic torch reference, built from any family's two graphs.

Each family hands export a prefix module and a denoising-step module with flat, named
signatures (:class:`reflex_core.models.family.FlowGraphs`). :class:`PolicyGraph` chains them
into the whole policy: the prefix once, then the Euler loop over the step with the schedule the
artifact records. Torch is imported by this module: only the export pipeline imports it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn


class PolicyGraph(nn.Module):
    """policy (monolithic): the prefix once, then the whole Euler loop over the step, unrolled.

    Exported directly this writes N copies of the step (slow to export); the monolithic
    exporter normally builds the graph from the two decomposed graphs instead
    (:mod:`reflex_core.export.compose`) and uses this module as its torch reference.

    :param inputs: the monolithic graph's input names (prefix inputs, step-only observation
        inputs, then ``noise``), in ``forward`` order.
    :param times: the flow time of each step (``FlowIO.times``); ``dt`` the step size.
    """

    def __init__(self, graphs: Any, inputs: Sequence[str], times: Sequence[float], dt: float):
        super().__init__()
        self.prefix = graphs.prefix
        self.step = graphs.step
        self.prefix_inputs = tuple(graphs.prefix_inputs)
        self.prefix_outputs = tuple(graphs.prefix_outputs)
        self.step_inputs = tuple(graphs.step_inputs)
        self.inputs = tuple(inputs)
        self.times = [float(t) for t in times]
        self.dt = float(dt)
        self.has_features = "features" in self.prefix_outputs
        # Inference only; a module left in training mode makes torch.export warn (an error
        # under the test suite), and `--unrolled` exports this module itself.
        self.eval()

    def forward(self, *args: torch.Tensor) -> tuple[torch.Tensor, ...]:
        feeds = dict(zip(self.inputs, args, strict=True))
        noise = feeds["noise"]
        outputs = self.prefix(*(feeds[n] for n in self.prefix_inputs))
        feeds.update(zip(self.prefix_outputs, outputs, strict=True))
        x = noise
        for t_value in self.times:
            feeds["x_t"] = x
            feeds["t"] = torch.full(
                (noise.shape[0],), t_value, dtype=torch.float32, device=noise.device
            )
            x = x + self.dt * self.step(*(feeds[n] for n in self.step_inputs))
        return (x, feeds["features"]) if self.has_features else (x,)
