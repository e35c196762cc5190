"""Training data for the correction head: recorded chunks, as JSON Lines.

One record per served chunk::

    {"features": [f_0, ..., f_{F-1}],                 # ActResult.features of the observation
     "base_actions": [[a_00, ..., a_0D], ...],         # (T, D) the chunk the policy returned
     "executed_actions": [[...] | null, ...],          # (T, D) what the robot should have done
                                                       #   at each step (null: step not executed)
     "latency_ms": 73.0}                               # observation age when the chunk was ready

Other keys are ignored. The key names can be changed (``--features-key``, ``--base-key``,
``--target-key``, ``--latency-key``), so the router's shadow records (``features``,
``latency_ms``, ``actions_a``), joined with the robot's executed actions, train a head with
``--base-key actions_a``. The head learns ``executed - base`` per step.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import attrs
import numpy as np

from reflex_a2c2.inputs import build_inputs
from reflex_core.errors import ConfigError
from reflex_core.plugin.kit.jsonl import BadLine, iter_records


@attrs.frozen
class RecordKeys:
    features: str = "features"
    base: str = "base_actions"
    target: str = "executed_actions"
    latency: str = "latency_ms"


@attrs.define(eq=False)
class HeadDataset:
    """Rows of head inputs and residual targets.

    :ivar x: (N, F + 3D + 2) head inputs. :ivar y: (N, D) residuals ``executed - base``.
    :ivar chunk: (N,) index of the record each row came from (splits keep chunks whole).
    """

    x: np.ndarray
    y: np.ndarray
    chunk: np.ndarray
    feature_dim: int
    action_dim: int
    skipped_records: int = 0

    @property
    def rows(self) -> int:
        return int(self.x.shape[0])

    @property
    def chunks(self) -> int:
        return int(np.unique(self.chunk).size)

    def subset(self, mask: np.ndarray) -> HeadDataset:
        return HeadDataset(
            self.x[mask], self.y[mask], self.chunk[mask], self.feature_dim, self.action_dim
        )

    def split(self, val_fraction: float, seed: int = 0) -> tuple[HeadDataset, HeadDataset]:
        """Train/validation split by chunk (rows of one chunk are never on both sides)."""
        ids = np.unique(self.chunk)
        rng = np.random.default_rng(seed)
        rng.shuffle(ids)
        n_val = int(round(len(ids) * val_fraction))
        if val_fraction > 0 and len(ids) > 1:
            n_val = min(max(n_val, 1), len(ids) - 1)
        val_ids = ids[:n_val]
        is_val = np.isin(self.chunk, val_ids)
        return self.subset(~is_val), self.subset(is_val)


def _invalid(message: str, where: str) -> ConfigError:
    return ConfigError(f"{where}: {message}", slug="a2c2-data-invalid")


def dataset_from_records(
    records: Iterable[dict[str, Any]], keys: RecordKeys = RecordKeys(), *, source: str = "data"
) -> HeadDataset:
    """Build head rows from records; a record missing a key or with the wrong shapes is an
    error naming it (silently training on half the data is worse than stopping)."""
    xs: list[np.ndarray] = []
    ys: list[np.ndarray] = []
    chunk_ids: list[np.ndarray] = []
    dims: tuple[int, int] | None = None
    skipped = 0
    for index, record in enumerate(records):
        where = f"{source} record {index + 1}"
        missing = [
            k for k in (keys.features, keys.base, keys.target, keys.latency) if k not in record
        ]
        if missing:
            raise _invalid(f"missing key(s) {', '.join(missing)}", where)
        if record[keys.features] is None or record[keys.base] is None:
            skipped += 1  # e.g. a shadow record whose policy call failed
            continue
        try:
            features = np.asarray(record[keys.features], dtype=np.float32).reshape(-1)
            base = np.asarray(record[keys.base], dtype=np.float32)
            latency = float(record[keys.latency])
        except (TypeError, ValueError) as exc:
            raise _invalid(f"not numeric: {exc}", where) from exc
        if base.ndim != 2 or base.shape[0] < 1:
            raise _invalid(f"{keys.base} must be a (T, D) list of lists, got {base.shape}", where)
        target_rows = record[keys.target]
        if not isinstance(target_rows, list) or len(target_rows) != base.shape[0]:
            raise _invalid(f"{keys.target} must have one entry per step ({base.shape[0]})", where)
        if dims is None:
            dims = (features.shape[0], base.shape[1])
        elif dims != (features.shape[0], base.shape[1]):
            raise _invalid(
                f"feature/action dims {features.shape[0]}/{base.shape[1]} differ from the "
                f"first record's {dims[0]}/{dims[1]}",
                where,
            )
        executed = np.full(base.shape, np.nan, dtype=np.float32)
        for step, row in enumerate(target_rows):
            if row is None:
                continue
            values = np.asarray([np.nan if v is None else v for v in row], dtype=np.float32)
            if values.shape != (base.shape[1],):
                raise _invalid(f"{keys.target}[{step}] has {values.shape[0]} values", where)
            executed[step] = values
        valid = np.isfinite(executed).all(axis=1) & np.isfinite(base).all(axis=1)
        if not np.isfinite(features).all() or not np.isfinite(latency) or not valid.any():
            skipped += 1
            continue
        x = build_inputs(features, base, latency)
        xs.append(x[valid])
        ys.append((executed - base)[valid])
        chunk_ids.append(np.full(int(valid.sum()), index, dtype=np.int64))
    if dims is None or not xs:
        raise ConfigError(f"{source}: no usable records", slug="a2c2-data-empty")
    return HeadDataset(
        x=np.concatenate(xs),
        y=np.concatenate(ys),
        chunk=np.concatenate(chunk_ids),
        feature_dim=dims[0],
        action_dim=dims[1],
        skipped_records=skipped,
    )


def load_dataset(
    paths: Sequence[str | Path], keys: RecordKeys = RecordKeys()
) -> tuple[HeadDataset, list[BadLine]]:
    """Read JSONL files (rotated siblings included) into one dataset; torn lines are skipped
    and returned."""
    bad: list[BadLine] = []

    def records() -> Iterable[dict[str, Any]]:
        for path in paths:
            if not Path(path).exists():
                raise ConfigError(f"training data {path} does not exist", slug="a2c2-data-missing")
            yield from iter_records(path, on_bad=bad.append)

    source = ", ".join(str(p) for p in paths)
    return dataset_from_records(records(), keys, source=source), bad
