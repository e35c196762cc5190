"""The lerobot half of the SmolVLA reference check. Runs in ``.venv-reference`` (lerobot 0.4.4,
transformers 4.57.x), never in our venv: it imports nothing of Reflex.

``python lerobot_side.py WORKDIR`` reads ``WORKDIR/request.json`` (checkpoint dirs and cases
written by ``check.py``), builds lerobot's own ``SmolVLAPolicy`` from each checkpoint directory
(lerobot's config parser, ``from_pretrained(strict=True)``), runs ``VLAFlowMatching`` on the
case tensors and noise, and writes ``WORKDIR/lerobot_<name>.npz``.

With a ``served`` entry in the request it also runs lerobot's whole inference path on raw
observations (uint8 HWC frames, the task string, the state in robot units), as
``lerobot-record`` does: the processor pipelines lerobot's factory loads from the checkpoint's
``policy_preprocessor.json`` / ``policy_postprocessor.json`` (``make_pre_post_processors``:
rename, batch, ``smolvla_new_line_processor``, tokenizer, device, normalizer; unnormalizer,
device), and ``lerobot.utils.control_utils.predict_action`` (``prepare_observation_for_inference``
-> preprocessor -> ``select_action`` -> postprocessor) called ``n_action_steps`` times, so the
whole chunk comes out of ``select_action``'s queue; and ``predict_action_chunk(batch, noise)``
+ postprocessor. Two substitutions, neither in the math: the tokenizer step gets the
checkpoint's own ``tokenizer.json`` as a ``PreTrainedTokenizerFast`` object (a processor
override; the saved config names the Hub backbone), and ``VLAFlowMatching.sample_noise``
returns the case's noise (``predict_action`` passes none). Results go to
``WORKDIR/lerobot_served.npz``: robot-unit chunks of both paths and what the model saw
(``prepare_images`` / ``prepare_state`` output, tokens and masks, also with
``padding="max_length"``).

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
    if request.get("served"):
        served(workdir, request["served"], modeling)
    return 0


def served(workdir: Path, spec: dict, modeling) -> None:  # noqa: ANN001
    """lerobot's own inference path on raw observations (module doc)."""
    from copy import copy

    import lerobot.policies.smolvla.processor_smolvla  # noqa: F401 (registers its newline step)
    import numpy as np
    import torch
    from lerobot.configs.policies import PreTrainedConfig
    from lerobot.policies.factory import make_pre_post_processors
    from lerobot.policies.utils import prepare_observation_for_inference
    from lerobot.utils.control_utils import predict_action
    from transformers import PreTrainedTokenizerFast

    checkpoint = Path(spec["checkpoint"])
    config = PreTrainedConfig.from_pretrained(checkpoint)
    config.vlm_model_name = str(checkpoint / config.vlm_model_name)
    config.device = "cpu"
    policy = modeling.SmolVLAPolicy.from_pretrained(checkpoint, config=config, strict=True)
    policy.eval()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_file=str(checkpoint / "tokenizer.json"), pad_token=spec["pad_token"]
    )

    def pipelines(**tokenizer_overrides: object):  # noqa: ANN202
        return make_pre_post_processors(
            config,
            pretrained_path=str(checkpoint),
            preprocessor_overrides={
                "tokenizer_processor": {"tokenizer": tokenizer, **tokenizer_overrides},
                "device_processor": {"device": "cpu"},
            },
        )

    preprocessor, postprocessor = pipelines()
    preprocessor_max, _ = pipelines(padding="max_length")
    cpu = torch.device("cpu")
    data = np.load(workdir / spec["inputs"])
    noise_box: dict[str, torch.Tensor] = {}

    def case_noise(shape, device):  # noqa: ANN001, ANN202
        noise = noise_box["noise"]
        assert tuple(shape) == tuple(noise.shape), (shape, noise.shape)
        return noise.clone().to(device)

    policy.model.sample_noise = case_noise
    results: dict[str, np.ndarray] = {}
    meta: dict[str, dict] = {}
    for case in spec["cases"]:
        name = case["name"]
        observation = {
            f"observation.images.{camera}": data[f"{name}/image/{camera}"]
            for camera in case["cameras"]
        }
        observation["observation.state"] = data[f"{name}/state"]
        task = case["prompt"]
        noise = torch.from_numpy(data[f"{name}/noise"])
        noise_box["noise"] = noise

        # 1. lerobot's robot loop: predict_action once per control step, chunk from the queue.
        policy.reset()
        steps = [
            predict_action(
                observation, policy, cpu, preprocessor, postprocessor, use_amp=False, task=task
            )
            for _ in range(config.n_action_steps)
        ]
        results[f"{name}/select_action"] = torch.cat(steps, dim=0).numpy()

        # 2. predict_action_chunk with the noise passed explicitly, then the postprocessor.
        batch = preprocessor(prepare_observation_for_inference(copy(observation), cpu, task))
        with torch.no_grad():
            policy.reset()
            chunk = policy.predict_action_chunk(dict(batch), noise=noise)
            results[f"{name}/predict_action_chunk"] = postprocessor(chunk)[0].numpy()
            images, image_masks = policy.prepare_images(batch)
            state = policy.prepare_state(batch)
        # 3. what the model saw.
        for i, (image, mask) in enumerate(zip(images, image_masks, strict=True)):
            results[f"{name}/images/{i}"] = image.numpy()
            results[f"{name}/image_masks/{i}"] = mask.numpy()
        results[f"{name}/state"] = state.numpy()
        results[f"{name}/tokens"] = batch["observation.language.tokens"].numpy()
        results[f"{name}/token_masks"] = batch["observation.language.attention_mask"].numpy()
        padded = preprocessor_max(prepare_observation_for_inference(copy(observation), cpu, task))
        results[f"{name}/tokens_max_length"] = padded["observation.language.tokens"].numpy()
        results[f"{name}/token_masks_max_length"] = padded[
            "observation.language.attention_mask"
        ].numpy()
        meta[name] = {"task": batch.get("task"), "num_images": len(images)}
    np.savez(workdir / "lerobot_served.npz", **results)
    (workdir / "lerobot_served.json").write_text(
        json.dumps(
            {
                "cases": meta,
                "preprocessor": [type(s).__name__ for s in preprocessor.steps],
                "postprocessor": [type(s).__name__ for s in postprocessor.steps],
            }
        )
    )


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
