"""The lerobot half of the SmolVLA reference check. Runs in ``.venv-reference`` (lerobot 0.4.4,
transformers 4.57.x), never in our venv: it imports nothing of Reflex.

``python lerobot_side.py WORKDIR`` reads ``WORKDIR/request.json`` (checkpoint dirs and cases
written by ``check.py``), builds lerobot's own ``SmolVLAPolicy`` from each checkpoint directory
(lerobot's config parser, ``from_pretrained(strict=True)``), runs ``VLAFlowMatching`` on the
case tensors and noise, and writes ``WORKDIR/lerobot_<name>.npz``.

Only import plumbing is replaced, never model math:

- ``lerobot.policies`` / ``lerobot.policies.__init__`` import every policy and the dataset stack:
  a bare package stand-in is used instead;
- modules the policy code imports but never calls on this path (``datasets``, ``torchvision``,
  ``lerobot.datasets``, ``pandas``, ``pyarrow``, ``av``) are stubs that raise when used;
- ``AutoProcessor.from_pretrained(vlm)`` in ``smolvlm_with_expert`` (it loads the SmolVLM2
  image/video processors, which need torchvision) returns the two special-token ids
  ``VLAFlowMatching.__init__`` reads; they are used only with ``add_image_special_tokens``,
  which our checkpoints (and smolvla_base) leave off.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import json
import sys
import types
from pathlib import Path

STUBBED = ("datasets", "torchvision", "lerobot.datasets", "av", "pandas", "pyarrow")


class _Unavailable:
    def __init__(self, name: str) -> None:
        self._name = name

    def __call__(self, *args: object, **kwargs: object) -> object:
        raise RuntimeError(f"{self._name} is a stub in the reference venv")

    def __getattr__(self, item: str) -> object:
        if item.startswith("__"):
            raise AttributeError(item)
        return _Unavailable(f"{self._name}.{item}")

    def __mro_entries__(self, bases: tuple) -> tuple:
        return (object,)


class _StubFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, name, path=None, target=None):  # noqa: ANN001, ANN201
        if any(name == s or name.startswith(s + ".") for s in STUBBED):
            return importlib.machinery.ModuleSpec(name, self, is_package=True)
        return None

    def create_module(self, spec):  # noqa: ANN001, ANN201
        module = types.ModuleType(spec.name)
        module.__path__ = []

        def getattr_(item: str, owner: str = spec.name) -> object:
            if item.startswith("__"):
                raise AttributeError(item)
            return _Unavailable(f"{owner}.{item}")

        module.__getattr__ = getattr_
        return module

    def exec_module(self, module) -> None:  # noqa: ANN001
        pass


def _import_lerobot():  # noqa: ANN202
    sys.meta_path.insert(0, _StubFinder())
    import lerobot

    policies = types.ModuleType("lerobot.policies")
    policies.__path__ = [str(Path(lerobot.__path__[0]) / "policies")]
    sys.modules["lerobot.policies"] = policies
    from lerobot.policies.smolvla import modeling_smolvla, smolvlm_with_expert
    from lerobot.policies.smolvla.configuration_smolvla import SmolVLAConfig

    class _Processor:
        @classmethod
        def from_pretrained(cls, model_id: str, **kwargs: object) -> object:
            tokenizer = types.SimpleNamespace(fake_image_token_id=-1, global_image_token_id=-1)
            return types.SimpleNamespace(tokenizer=tokenizer)

    smolvlm_with_expert.AutoProcessor = _Processor
    return modeling_smolvla, SmolVLAConfig


def main(workdir: Path) -> int:
    import numpy as np
    import torch

    torch.manual_seed(0)
    torch.set_num_threads(1)
    modeling, smolvla_config_cls = _import_lerobot()
    from lerobot.configs.policies import PreTrainedConfig

    request = json.loads((workdir / "request.json").read_text())
    for name, checkpoint in request["checkpoints"].items():
        checkpoint = Path(checkpoint)
        config = PreTrainedConfig.from_pretrained(checkpoint)
        assert isinstance(config, smolvla_config_cls), type(config)
        config.vlm_model_name = str(checkpoint / config.vlm_model_name)
        config.device = "cpu"
        policy = modeling.SmolVLAPolicy.from_pretrained(checkpoint, config=config, strict=True)
        policy.eval()
        model = policy.model
        results: dict[str, np.ndarray] = {}
        for case in request["cases"]:
            data = np.load(workdir / case["inputs"])
            images = [torch.from_numpy(data[f"image_{i}"]) for i in range(case["num_images"])]
            masks = [torch.from_numpy(data[f"image_mask_{i}"]) for i in range(case["num_images"])]
            tokens = torch.from_numpy(data["tokens"])
            token_masks = torch.from_numpy(data["token_masks"])
            state = torch.from_numpy(data["state"])
            noise = torch.from_numpy(data["noise"])
            with torch.no_grad():
                actions = model.sample_actions(
                    images, masks, tokens, token_masks, state, noise=noise
                )
                embs, pad, att = model.embed_prefix(images, masks, tokens, token_masks, state=state)
                att_2d = modeling.make_att_2d_masks(pad, att)
                positions = torch.cumsum(pad, dim=1) - 1
                _, cache = model.vlm_with_expert.forward(
                    attention_mask=att_2d,
                    position_ids=positions,
                    past_key_values=None,
                    inputs_embeds=[embs, None],
                    use_cache=True,
                    fill_kv_cache=True,
                )
            key = case["name"]
            results[f"{key}/actions"] = actions.numpy()
            results[f"{key}/past_k_0"] = cache[0]["key_states"].numpy()
            results[f"{key}/past_v_0"] = cache[0]["value_states"].numpy()
            results[f"{key}/prefix_mask"] = pad.numpy()
        np.savez(workdir / f"lerobot_{name}.npz", **results)
        params = sum(p.numel() for p in policy.parameters())
        (workdir / f"lerobot_{name}.json").write_text(
            json.dumps({"parameters": params, "num_steps": config.num_steps})
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
