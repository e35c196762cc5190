"""``reflex export``: PyTorch policy -> ONNX graphs -> parity gate -> artifact directory.

- :mod:`.wrappers` — flat-signature torch modules, one per graph (torch)
- :mod:`.exporters` — the ``decomposed`` and ``monolithic`` modes
- :mod:`.compose` — joins the two decomposed graphs into the monolithic one (an ONNX Loop)
- :mod:`.fp16` — fp16 conversion keeping the time embedding, RoPE and norm statistics in fp32
- :mod:`.parity` — the gate: torch eager vs onnxruntime on seeded cases
- :mod:`.pipeline` — load, export into a temporary directory, gate, then publish
- :mod:`.progress` — the stderr progress display

Importing this package imports no torch; the pipeline imports it when it runs.
"""
