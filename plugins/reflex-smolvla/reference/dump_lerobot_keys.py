"""Write the state-dict key set lerobot 0.4.4 builds for ``lerobot/smolvla_base`` (keys with the
policy's ``model.`` prefix and their shapes, plus the parameter count) as JSON: the fixture
``tests/data/lerobot_smolvla_base_keys.json`` our meta-device build is compared with.

Runs in ``.venv-reference`` (lerobot 0.4.4, transformers 4.57.x) on the meta device, offline:
``python dump_lerobot_keys.py VLM_CONFIG_JSON OUT_JSON``, where VLM_CONFIG_JSON is the
SmolVLM2-500M config our plugin knows (``reflex_smolvla.config.KNOWN_VLM_CONFIGS`` as JSON).
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from lerobot_side import _import_lerobot  # noqa: E402


def main(vlm_config: Path, out: Path) -> int:
    import torch

    modeling, config_cls = _import_lerobot()
    from lerobot.configs.types import FeatureType, PolicyFeature

    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "config.json").write_text(vlm_config.read_text())
        config = config_cls(
            vlm_model_name=tmp,
            load_vlm_weights=False,
            input_features={
                "observation.state": PolicyFeature(FeatureType.STATE, (6,)),
                **{
                    f"observation.images.camera{i}": PolicyFeature(
                        FeatureType.VISUAL, (3, 256, 256)
                    )
                    for i in (1, 2, 3)
                },
            },
            output_features={"action": PolicyFeature(FeatureType.ACTION, (6,))},
            device="cpu",
        )
        with torch.device("meta"):
            policy = modeling.SmolVLAPolicy(config)
    keys = {k: list(v.shape) for k, v in policy.state_dict().items()}
    params = sum(p.numel() for p in policy.parameters())
    out.write_text(
        json.dumps({"parameters": params, "keys": keys}, indent=1, sort_keys=True) + "\n"
    )
    print(json.dumps({"parameters": params, "keys": len(keys)}))
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2])))
