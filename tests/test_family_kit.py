"""The pieces every model family shares (reflex_core.models.weights / flow / lerobot /
tiny_tokenizer), tested on their own: pi0, SmolVLA, GR00T and a third party's family rely on
them, so their contract is pinned here rather than only through one family."""

from __future__ import annotations

from pathlib import Path

import attrs
import pytest

torch = pytest.importorskip("torch")

from safetensors.torch import save_file  # noqa: E402
from torch import nn  # noqa: E402

from reflex_core.errors import CheckpointError  # noqa: E402
from reflex_core.models.flow import euler_integrate, masked_mean  # noqa: E402
from reflex_core.models.lerobot import resolve_tokenizer  # noqa: E402
from reflex_core.models.tiny_tokenizer import WORDS, word_vocabulary  # noqa: E402
from reflex_core.models.weights import KeyPlan, load_planned, open_safetensors  # noqa: E402
from reflex_core.runtime.io_spec import FlowIO  # noqa: E402


class _Tied(nn.Module):
    """An embedding whose checkpoint may store only its tied ``head`` twin."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(5, 3)
        self.head = nn.Linear(3, 5, bias=False)
        self.proj = nn.Linear(3, 2)


def _meta_model() -> _Tied:
    with torch.device("meta"):
        return _Tied()


def _load(path: Path, plan_for, what: str = "toy architecture") -> tuple[_Tied, set[str]]:
    model = _meta_model()
    with open_safetensors(path) as f:
        cast = load_planned(model, f, path, plan_for(list(f.keys())), what=what)
    return model, cast


def _prefixed(keys: list[str]) -> KeyPlan:
    """``model.``-prefixed keys, anything else unexpected; the embedding may come from head."""
    names = {"embed.weight", "head.weight", "proj.weight", "proj.bias"}
    sources = {k.removeprefix("model."): k for k in keys if k.removeprefix("model.") in names}
    unexpected = [k for k in keys if k.removeprefix("model.") not in names]
    tied = {"embed.weight": "head.weight"} if "embed.weight" not in sources else {}
    return KeyPlan(sources=sources, unexpected=unexpected, tied=tied, missing_prefix="model.")


def test_a_strict_load_names_every_missing_unexpected_and_misshapen_key(tmp_path: Path) -> None:
    path = tmp_path / "bad.safetensors"
    save_file(
        {"model.head.weight": torch.zeros(5, 3), "model.proj.weight": torch.zeros(2, 4),
         "model.extra": torch.zeros(1)},
        str(path),
    )  # fmt: skip
    with pytest.raises(CheckpointError) as info:
        _load(path, _prefixed)
    error = info.value
    assert error.slug == "checkpoint-mismatch" and error.status == 400
    assert "does not match the toy architecture" in error.message
    assert error.details["missing"] == ["model.proj.bias"]  # the tied embedding is not missing
    assert error.details["unexpected"] == ["model.extra"]
    assert error.details["wrong_shape"] == {"model.proj.weight": [[2, 3], [2, 4]]}

    # Reported under the parameter names instead (pi's details).
    with pytest.raises(CheckpointError) as info:
        _load(path, lambda keys: attrs.evolve(_prefixed(keys), report_by="model"))
    assert info.value.details["missing"] == ["proj.bias"]
    assert info.value.details["wrong_shape"] == {"proj.weight": [[2, 3], [2, 4]]}


def test_a_strict_load_casts_to_fp32_and_shares_a_tied_tensor(tmp_path: Path) -> None:
    path = tmp_path / "good.safetensors"
    head = torch.arange(15, dtype=torch.float32).reshape(5, 3)
    save_file(
        {"model.head.weight": head.to(torch.bfloat16), "model.proj.weight": torch.ones(2, 3),
         "model.proj.bias": torch.full((2,), 0.5)},
        str(path),
    )  # fmt: skip
    model, cast = _load(path, _prefixed)
    assert cast == {"bfloat16"}
    assert all(p.dtype == torch.float32 and not p.is_meta for p in model.parameters())
    torch.testing.assert_close(model.head.weight, head, rtol=0, atol=0)
    # The embedding is the head's tensor itself (no second copy in memory).
    assert model.embed.weight.data_ptr() == model.head.weight.data_ptr()


def test_an_unreadable_weights_file_has_its_own_slug(tmp_path: Path) -> None:
    path = tmp_path / "broken.safetensors"
    path.write_bytes(b"not a safetensors file")
    with pytest.raises(CheckpointError) as info:
        open_safetensors(path)
    assert info.value.slug == "checkpoint-unreadable"


@pytest.mark.parametrize(("t_start", "t_end"), [(1.0, 0.0), (0.0, 1.0)])
def test_euler_runs_the_flow_in_the_direction_the_family_states(
    t_start: float, t_end: float
) -> None:
    seen: list[list[float]] = []

    def velocity(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        assert t.dtype == torch.float32 and t.shape == (x.shape[0],)
        seen.append(t.tolist())
        return torch.ones_like(x) * t[:, None, None]

    noise = torch.zeros(2, 3, 4)
    x = euler_integrate(velocity, noise, 4, FlowIO(t_start=t_start, t_end=t_end))
    expected_t = [t_start + k * (t_end - t_start) / 4 for k in range(4)]
    assert [row[0] for row in seen] == expected_t
    dt = (t_end - t_start) / 4
    torch.testing.assert_close(x, torch.full_like(noise, dt * sum(expected_t)))


def test_masked_mean_ignores_masked_tokens_and_an_empty_row_is_zero() -> None:
    hidden = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]], [[5.0, 5.0]] * 3])
    mask = torch.tensor([[True, True, False], [False, False, False]])
    torch.testing.assert_close(masked_mean(hidden, mask), torch.tensor([[2.0, 3.0], [0.0, 0.0]]))


def test_the_tokenizer_is_the_named_file_else_the_first_found(tmp_path: Path) -> None:
    checkpoint, backbone = tmp_path / "ckpt", tmp_path / "vlm"
    checkpoint.mkdir()
    backbone.mkdir()
    (backbone / "tokenizer.json").write_text("{}")
    assert resolve_tokenizer(None, checkpoint, backbone) == backbone / "tokenizer.json"
    assert resolve_tokenizer(None, checkpoint, None) is None
    with pytest.raises(CheckpointError) as info:
        resolve_tokenizer(tmp_path / "absent.json", checkpoint)
    assert info.value.slug == "checkpoint-not-found"


def test_a_word_vocabulary_is_leading_tokens_numbers_then_new_words() -> None:
    vocab = word_vocabulary(["<pad>", "cube", ","], digits=3)
    assert vocab[:6] == ["<pad>", "cube", ",", "0", "1", "2"]
    assert vocab.count("cube") == 1 and len(vocab) == len(set(vocab))
    assert vocab[6:] == [w for w in dict.fromkeys(WORDS) if w != "cube"]
