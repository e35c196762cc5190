"""The lerobot half of the GR00T reference check. Runs in ``.venv-reference`` (lerobot 0.4.4,
transformers 4.57): imports nothing from reflex.

``python lerobot_side.py WORKDIR`` reads ``WORKDIR/request.json`` and ``WORKDIR/inputs.safetensors``
(written by ``check.py``), builds lerobot's ``GR00TN15`` from the checkpoint's base and Eagle
configs, loads the checkpoint's ``model.safetensors`` the way lerobot loads a policy
(``safetensors.torch.load_model(..., strict=True)`` on a module holding ``_groot_model``), runs
the backbone and ``action_head.get_action`` (its own ``torch.randn`` draws the noise after
``torch.manual_seed(seed)``), and writes ``WORKDIR/outputs.safetensors``. With ``"keys_only"`` in the request it builds the
model on the meta device and writes only its state-dict shapes and parameter count.

What is not lerobot's here, and why:
- ``lerobot.policies`` and ``lerobot.policies.groot`` are bare package stand-ins: their
  ``__init__`` import every policy and the dataset stack (notes/reference-implementations.md);
- ``peft`` is a stub (imported at module level by the Eagle model for LoRA, which is off);
- the Eagle model forces ``flash_attention_2`` on its SigLIP tower; flash-attn is a CUDA kernel,
  so on this CPU the attention implementation is mapped to ``eager`` (the same math);
- the Eagle processor assets are not fetched: ``HF_LEROBOT_HOME`` points into WORKDIR and the
  Eagle ``config.json`` there is the checkpoint's (lerobot copies its vendored code beside it).
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import types
from pathlib import Path


def _stub_packages(lerobot_root: Path) -> None:
    for name, sub in (
        ("lerobot.policies", "policies"),
        ("lerobot.policies.groot", "policies/groot"),
    ):
        module = types.ModuleType(name)
        module.__path__ = [str(lerobot_root / sub)]
        sys.modules[name] = module
    # transformers, diffusers and lerobot probe for peft at import: import them before the stub exists.
    import diffusers  # noqa: F401
    import lerobot.utils.import_utils  # noqa: F401
    import transformers  # noqa: F401

    peft = types.ModuleType("peft")

    def _no_lora(*args, **kwargs):
        raise RuntimeError("peft is stubbed in the reference check (LoRA is off)")

    peft.LoraConfig = _no_lora
    peft.get_peft_model = _no_lora
    sys.modules["peft"] = peft


def _eager_attention() -> None:
    from transformers import modeling_utils

    original = modeling_utils.PreTrainedModel._check_and_adjust_attn_implementation

    def check(self, attn_implementation, is_init_check=False):
        if attn_implementation and "flash_attention" in str(attn_implementation):
            attn_implementation = "eager"
        return original(self, attn_implementation, is_init_check)

    modeling_utils.PreTrainedModel._check_and_adjust_attn_implementation = check


def main(workdir: Path) -> int:
    request = json.loads((workdir / "request.json").read_text())
    home = workdir / "lerobot_home"
    eagle_dir = home / "eagle"
    eagle_dir.mkdir(parents=True, exist_ok=True)
    eagle = dict(request["eagle_config"])
    eagle["auto_map"] = {
        "AutoConfig": "configuration_eagle2_5_vl.Eagle25VLConfig",
        "AutoModel": "modeling_eagle2_5_vl.Eagle25VLForConditionalGeneration",
    }
    eagle["text_config"] = {**eagle["text_config"], "_attn_implementation": "eager"}
    eagle["_attn_implementation"] = "eager"
    (eagle_dir / "config.json").write_text(json.dumps(eagle))
    os.environ["HF_LEROBOT_HOME"] = str(home)
    os.environ["HF_HUB_OFFLINE"] = "1"

    spec = importlib.util.find_spec("lerobot")
    assert spec is not None and spec.origin is not None
    _stub_packages(Path(spec.origin).parent)

    import torch
    from safetensors.torch import load_file, load_model, save_file
    from torch import nn
    from transformers.feature_extraction_utils import BatchFeature

    _eager_attention()
    import lerobot
    from lerobot.policies.groot.groot_n1 import GR00TN15, GR00TN15Config

    torch.set_num_threads(1)
    base = dict(request["base_config"])
    base["backbone_cfg"] = {**base["backbone_cfg"], "tokenizer_assets_repo": "eagle"}
    config = GR00TN15Config(**base)
    if request.get("keys_only"):
        # Architecture only (real size fits: nothing is allocated on the meta device). The
        # action head's Beta time sampler validates its args with .item(), which meta lacks.
        torch.distributions.Distribution.set_default_validate_args(False)
        with torch.device("meta"):
            model = GR00TN15(config, local_model_path=str(workdir))
        holder = nn.Module()
        holder._groot_model = model
        state = holder.state_dict(keep_vars=True)
        (workdir / "reference.json").write_text(
            json.dumps(
                {
                    "shapes": {k: list(v.shape) for k, v in state.items()},
                    "num_parameters": sum(p.numel() for p in holder.parameters()),
                }
            )
        )
        return 0
    model = GR00TN15(config, local_model_path=str(workdir))
    holder = nn.Module()
    holder._groot_model = model
    missing, unexpected = load_model(holder, request["weights"], strict=False)
    model.eval()

    inputs = load_file(str(workdir / "inputs.safetensors"))
    outputs = {}
    with torch.no_grad():
        vl = BatchFeature(
            data={
                "eagle_input_ids": inputs["tokens"],
                "eagle_attention_mask": inputs["attention_mask"],
                "eagle_pixel_values": inputs["pixel_values"],
                "eagle_image_sizes": torch.zeros(inputs["pixel_values"].shape[0], 2),
            }
        )
        backbone_out = model.backbone(vl)
        outputs["backbone_features"] = backbone_out["backbone_features"].clone()
        processed = model.action_head.process_backbone_output(BatchFeature(data=dict(backbone_out)))
        outputs["vl_features"] = processed["backbone_features"].clone()
        for name, slot in request["embodiments"].items():
            action_input = BatchFeature(
                data={
                    "state": inputs["state"][:, None, :],
                    "embodiment_id": torch.full((inputs["state"].shape[0],), int(slot)),
                }
            )
            torch.manual_seed(request["seed"])
            drawn = torch.randn(tuple(inputs["noise"].shape))
            outputs[f"noise_drawn_{name}"] = drawn
            torch.manual_seed(request["seed"])
            result = model.action_head.get_action(
                BatchFeature(data=dict(backbone_out)), action_input
            )
            outputs[f"actions_{name}"] = result["action_pred"].clone()
    save_file({k: v.contiguous() for k, v in outputs.items()}, str(workdir / "outputs.safetensors"))
    import transformers

    (workdir / "reference.json").write_text(
        json.dumps(
            {
                "missing": sorted(missing),
                "unexpected": sorted(unexpected),
                "lerobot": getattr(lerobot, "__version__", "0.4.4"),
                "transformers": transformers.__version__,
                "torch": torch.__version__,
                "state_dict_keys": sorted(holder.state_dict().keys()),
                "num_parameters": sum(p.numel() for p in holder.parameters()),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
