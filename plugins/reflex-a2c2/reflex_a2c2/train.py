"""Fit a correction head with NumPy: a tanh MLP, mean squared error, Adam, early stopping.

No torch: the head is small (a few thousand parameters) and the plugin must install on an
edge box, so the gradients are written out by hand.
"""

from __future__ import annotations

import logging

import attrs
import numpy as np

from reflex_a2c2.dataset import HeadDataset
from reflex_a2c2.head import CorrectionHead, MLPHead

log = logging.getLogger(__name__)


@attrs.frozen
class TrainConfig:
    hidden: int = 64
    layers: int = 2  # hidden layers
    epochs: int = 200
    batch_size: int = 256
    lr: float = 3e-3
    weight_decay: float = 0.0
    val_fraction: float = 0.2
    patience: int = 20  # epochs without a better validation loss before stopping
    seed: int = 0


@attrs.frozen
class TrainReport:
    """What training achieved, measured on the held-out chunks.

    ``error_before`` / ``error_after``: mean per-step L2 distance between the executed action
    and the base action, without and with the head's residual.
    """

    train_rows: int
    val_rows: int
    epochs_run: int
    best_epoch: int
    best_val_loss: float
    error_before: float
    error_after: float
    suggested_max_norm: float

    def to_dict(self) -> dict[str, float | int]:
        return attrs.asdict(self)


def mean_step_error(residual_pred: np.ndarray, residual_true: np.ndarray) -> float:
    """Mean over steps of ``|| true - pred ||_2`` (0 predicted = the uncorrected error)."""
    return float(np.linalg.norm(residual_true - residual_pred, axis=1).mean())


def evaluate(head: CorrectionHead, data: HeadDataset) -> tuple[float, float]:
    """``(error without correction, error with the head's residual)`` on ``data``."""
    pred = head.predict(data.x)
    return mean_step_error(np.zeros_like(data.y), data.y), mean_step_error(pred, data.y)


def _standardisation(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean = x.mean(axis=0)
    std = x.std(axis=0)
    # A constant column (e.g. every chunk recorded at the same latency) carries no information;
    # std 1 keeps it at zero instead of dividing by zero.
    std = np.where(std > 1e-6, std, 1.0)
    return mean.astype(np.float32), std.astype(np.float32)


class _Adam:
    def __init__(self, params: list[np.ndarray], lr: float, weight_decay: float) -> None:
        self.params = params
        self.lr = lr
        self.weight_decay = weight_decay
        self.m = [np.zeros_like(p) for p in params]
        self.v = [np.zeros_like(p) for p in params]
        self.t = 0

    def step(self, grads: list[np.ndarray]) -> None:
        b1, b2, eps = 0.9, 0.999, 1e-8
        self.t += 1
        c1 = 1 - b1**self.t
        c2 = 1 - b2**self.t
        for p, g, m, v in zip(self.params, grads, self.m, self.v, strict=True):
            if self.weight_decay and p.ndim == 2:  # decoupled (AdamW), weights only
                p -= self.lr * self.weight_decay * p
            m *= b1
            m += (1 - b1) * g
            v *= b2
            v += (1 - b2) * g * g
            p -= self.lr * (m / c1) / (np.sqrt(v / c2) + eps)


def _forward(
    weights: list[np.ndarray], biases: list[np.ndarray], z: np.ndarray
) -> tuple[np.ndarray, list[np.ndarray]]:
    activations = [z]
    h = z
    for w, b in zip(weights[:-1], biases[:-1], strict=True):
        h = np.tanh(h @ w + b)
        activations.append(h)
    return h @ weights[-1] + biases[-1], activations


def _gradients(
    weights: list[np.ndarray],
    activations: list[np.ndarray],
    d_out: np.ndarray,
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    n = len(weights)
    gw: list[np.ndarray] = [np.empty(0)] * n
    gb: list[np.ndarray] = [np.empty(0)] * n
    delta = d_out
    for i in range(n - 1, -1, -1):
        gw[i] = activations[i].T @ delta
        gb[i] = delta.sum(axis=0)
        if i > 0:
            h = activations[i]
            delta = (delta @ weights[i].T) * (1.0 - h * h)
    return gw, gb


def _mse(out: np.ndarray, target: np.ndarray) -> float:
    return float(np.mean((out - target) ** 2))


def train_head(
    data: HeadDataset, config: TrainConfig = TrainConfig()
) -> tuple[MLPHead, TrainReport]:
    """Fit a head on ``data`` (split by chunk into train/validation) and report held-out error."""
    if config.layers < 1 or config.hidden < 1 or config.epochs < 1 or config.batch_size < 1:
        raise ValueError("layers, hidden, epochs and batch_size must be >= 1")
    train, val = data.split(config.val_fraction, seed=config.seed)
    if val.rows == 0:  # too little data to hold any out: validate on the training rows
        val = train
    rng = np.random.default_rng(config.seed)
    x_mean, x_std = _standardisation(train.x)
    y_scale = train.y.std(axis=0)
    y_scale = np.where(y_scale > 1e-8, y_scale, 1.0).astype(np.float32)
    z_train = ((train.x - x_mean) / x_std).astype(np.float32)
    t_train = (train.y / y_scale).astype(np.float32)
    z_val = ((val.x - x_mean) / x_std).astype(np.float32)
    t_val = (val.y / y_scale).astype(np.float32)

    sizes = [train.x.shape[1], *([config.hidden] * config.layers), data.action_dim]
    weights: list[np.ndarray] = []
    biases: list[np.ndarray] = []
    for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        scale = np.sqrt(2.0 / (fan_in + fan_out))  # Glorot
        if i == len(sizes) - 2:
            scale *= 0.1  # start close to "no correction"
        weights.append((rng.standard_normal((fan_in, fan_out)) * scale).astype(np.float32))
        biases.append(np.zeros(fan_out, dtype=np.float32))
    adam = _Adam([*weights, *biases], config.lr, config.weight_decay)

    best = (np.inf, 0, [w.copy() for w in weights], [b.copy() for b in biases])
    epochs_run = 0
    n = z_train.shape[0]
    for epoch in range(1, config.epochs + 1):
        epochs_run = epoch
        order = rng.permutation(n)
        for start in range(0, n, config.batch_size):
            idx = order[start : start + config.batch_size]
            out, acts = _forward(weights, biases, z_train[idx])
            d_out = (2.0 / out.size) * (out - t_train[idx])
            gw, gb = _gradients(weights, acts, d_out.astype(np.float32))
            adam.step([*gw, *gb])
        val_loss = _mse(_forward(weights, biases, z_val)[0], t_val)
        if val_loss < best[0] - 1e-7:
            best = (val_loss, epoch, [w.copy() for w in weights], [b.copy() for b in biases])
        elif epoch - best[1] >= config.patience:
            break
        if epoch % 20 == 0:
            log.info("a2c2 train: epoch %d, validation loss %.5f", epoch, val_loss)

    train_norms = np.linalg.norm(train.y, axis=1)
    suggested = float(1.5 * np.percentile(train_norms, 99)) if train_norms.size else 0.0
    head = MLPHead(
        weights=best[2],
        biases=best[3],
        x_mean=x_mean,
        x_std=x_std,
        y_scale=y_scale,
        feature_dim=data.feature_dim,
        action_dim=data.action_dim,
        suggested_max_norm=suggested if suggested > 0 else None,
    )
    before, after = evaluate(head, val)
    report = TrainReport(
        train_rows=train.rows,
        val_rows=val.rows,
        epochs_run=epochs_run,
        best_epoch=best[1],
        best_val_loss=float(best[0]),
        error_before=before,
        error_after=after,
        suggested_max_norm=suggested,
    )
    return head, report
