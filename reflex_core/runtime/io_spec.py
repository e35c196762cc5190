"""The preprocessing contract: everything the runtime does around the graphs, as data.

A model family's loader describes how raw observations become graph inputs and how graph outputs
become actions (:class:`IOSpec`); the export writes it into ``reflex_config.json`` and the
torch-free runtime applies it. The runtime therefore runs any family without family-specific
code: a new family states its pipeline here instead of adding a branch to ``runtime/``.

No torch and no family names here (a test checks that ``runtime/`` stays family-free).
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from typing import Any

import attrs

from reflex_core.errors import ArtifactError

#: Where a resized image sits in its padded frame: centred (openpi's recipe), or in the
#: bottom-right corner with the padding on the left and top (another lerobot recipe).
PAD_POSITIONS = ("center", "bottom_right")
#: ``resize_with_pad`` keeps the aspect ratio and pads; ``stretch`` resizes straight to the
#: model's size (see :class:`ImageIO`).
RESIZE_MODES = ("resize_with_pad", "stretch")
PADDING_SIDES = ("right",)
#: The fields a prompt template may use.
TEMPLATE_FIELDS = ("task", "state")


def _schema_error(message: str) -> ArtifactError:
    return ArtifactError(message, slug="artifact-schema")


def _one_of(allowed: tuple[str, ...]) -> Any:
    def check(instance: Any, attribute: Any, value: Any) -> None:
        if value not in allowed:
            raise _schema_error(
                f"{type(instance).__name__}.{attribute.name}={value!r} is not one of {list(allowed)}"
            )

    return check


def _positive(instance: Any, attribute: Any, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise _schema_error(f"{type(instance).__name__}.{attribute.name} must be a positive int")


def _optional_positive(instance: Any, attribute: Any, value: Any) -> None:
    if value is not None:
        _positive(instance, attribute, value)


def _template(instance: Any, attribute: Any, value: Any) -> None:
    try:
        fields = [f for _, f, _, _ in string.Formatter().parse(value) if f is not None]
    except ValueError as exc:
        raise _schema_error(f"prompt template {value!r} is malformed: {exc}") from None
    unknown = [f for f in fields if f not in TEMPLATE_FIELDS]
    if unknown:
        raise _schema_error(
            f"prompt template {value!r} uses {unknown}; allowed fields: {list(TEMPLATE_FIELDS)}"
        )


@attrs.frozen
class ImageIO:
    """How camera frames become the ``images`` / ``image_masks`` graph inputs.

    ``resize="resize_with_pad"``: a frame (uint8 HWC RGB) is scaled to [0, 1], resized keeping
    its aspect ratio (bilinear, ``align_corners=False``, no antialias) into ``height`` x
    ``width`` with ``pad_value`` (in [0, 1] units, before the value mapping) around it, then
    mapped linearly onto ``range``. ``resize="stretch"`` (e.g. Eagle 2.5 VL's processor): the
    uint8 frame is resized to exactly ``height`` x ``width`` (aspect ratio not kept, no padding)
    with torch's uint8 antialiased bicubic, as torchvision's resize of a uint8 tensor does on the
    CPU, then scaled to [0, 1] and mapped onto ``range``; ``pad_value`` and ``pad_position`` are
    unused.

    :ivar cameras: the graph's camera order; observations name their cameras.
    :ivar pad_value: the fill of the padding, in [0, 1] units (some lerobot 0.4.4 recipes pad with
        -1.0 here, which lands at -3.0 after mapping to [-1, 1]; openpi pads with 0.0).
    :ivar pad_position: see :data:`PAD_POSITIONS`.
    :ivar range: the model's value range; [0, 1] maps linearly onto it.
    :ivar missing_fill: the value (model units) of a camera the observation lacks; its mask is
        False.
    """

    cameras: tuple[str, ...] = attrs.field(converter=tuple)
    height: int = attrs.field(validator=_positive)
    width: int = attrs.field(validator=_positive)
    resize: str = attrs.field(default="resize_with_pad", validator=_one_of(RESIZE_MODES))
    pad_value: float = attrs.field(default=0.0, converter=float)
    pad_position: str = attrs.field(default="center", validator=_one_of(PAD_POSITIONS))
    range: tuple[float, float] = attrs.field(
        default=(-1.0, 1.0), converter=lambda v: (float(v[0]), float(v[1]))
    )
    missing_fill: float = attrs.field(default=-1.0, converter=float)

    def __attrs_post_init__(self) -> None:
        if not self.cameras or len(set(self.cameras)) != len(self.cameras):
            raise _schema_error(f"image cameras must be distinct and non-empty: {self.cameras}")


@attrs.frozen
class PromptIO:
    """How the task text (and possibly the state) becomes the prompt the tokenizer sees.

    The prompt is ``template.format(task=..., state=...)``:

    - ``task``: the observation's instruction, or ``default_task`` when it has none (no prompt
      or an empty one; e.g. "Perform the task."); with
      ``clean_task`` stripped and with ``_`` and newlines turned into spaces (openpi); then
      ``task_suffix`` is appended unless the task already ends with it (e.g. a newline).
    - ``state``: the normalized state as ``state_bins`` bins over [-1, 1], space separated
      (``digitize(x, linspace(-1, 1, bins + 1)[:-1]) - 1``); with ``state_pad_to`` the state is
      first zero-padded to that length (as lerobot 0.4.x did, later versions do not).
    """

    template: str = attrs.field(default="{task}", validator=_template)
    clean_task: bool = False
    task_suffix: str = ""
    state_bins: int | None = attrs.field(default=None, validator=_optional_positive)
    state_pad_to: int | None = attrs.field(default=None, validator=_optional_positive)
    #: An additive field (no schema bump): an artifact written before it reads as ``""``,
    #: the task the runtime used then.
    default_task: str = ""

    @property
    def uses_state(self) -> bool:
        return any(f == "state" for _, f, _, _ in string.Formatter().parse(self.template))

    def __attrs_post_init__(self) -> None:
        if self.uses_state and self.state_bins is None:
            raise _schema_error("a prompt template with {state} needs state_bins")


@attrs.frozen
class TokenizerIO:
    """The tokenizer file shipped in the artifact and how prompts are encoded: padded to
    ``max_length`` with ``pad_id`` on the right, truncated to ``max_length``, with the file's
    special tokens (BOS...) when ``add_special_tokens``."""

    file: str
    sha256: str
    max_length: int = attrs.field(validator=_positive)
    pad_id: int = 0
    padding_side: str = attrs.field(default="right", validator=_one_of(PADDING_SIDES))
    add_special_tokens: bool = True


@attrs.frozen
class FlowIO:
    """The Euler integration the runtime runs around the denoising step.

    ``t_k = t_start + k * dt`` with ``dt = (t_end - t_start) / num_steps``, ``x <- x + dt *
    v(x, t_k)``, starting from the noise (most families run 1 -> 0; some 0 -> 1).
    """

    t_start: float = attrs.field(default=1.0, converter=float)
    t_end: float = attrs.field(default=0.0, converter=float)

    def __attrs_post_init__(self) -> None:
        if self.t_start == self.t_end:
            raise _schema_error("flow t_start and t_end must differ")

    def times(self, num_steps: int) -> list[float]:
        """The flow time of each step, in Python floats (the graphs bake the same constants)."""
        dt = (self.t_end - self.t_start) / num_steps
        return [self.t_start + k * dt for k in range(num_steps)]

    def dt(self, num_steps: int) -> float:
        return (self.t_end - self.t_start) / num_steps


@attrs.frozen
class IOSpec:
    """The whole contract between the raw observation and the graphs (minus normalization
    statistics, which the artifact keeps beside it)."""

    image: ImageIO
    prompt: PromptIO
    flow: FlowIO = FlowIO()

    def to_json(self) -> dict[str, Any]:
        return {
            "image": attrs.asdict(self.image, recurse=False, value_serializer=_jsonable),
            "prompt": attrs.asdict(self.prompt),
            "flow": attrs.asdict(self.flow),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> IOSpec:
        """:raises ArtifactError: ``artifact-schema`` for an unknown field or a bad value."""
        try:
            image = dict(data["image"])
            return cls(
                image=ImageIO(**image),
                prompt=PromptIO(**dict(data["prompt"])),
                flow=FlowIO(**dict(data.get("flow") or {})),
            )
        except ArtifactError:
            raise
        except (KeyError, TypeError, ValueError) as exc:
            raise _schema_error(f"invalid preprocessing contract: {exc}") from None


def _jsonable(instance: Any, attribute: Any, value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def override(spec: IOSpec, assignments: Mapping[str, Any]) -> IOSpec:
    """Apply ``{"image.pad_value": -1.0, "prompt.state_pad_to": 32}`` (``reflex export
    --preprocess KEY=VALUE``) to a spec. Values are JSON-decoded by the caller.

    :raises ConfigError: ``preprocess-override-invalid`` for an unknown key or a bad value.
    """
    from reflex_core.errors import ConfigError

    parts = {"image": spec.image, "prompt": spec.prompt, "flow": spec.flow}
    changes: dict[str, dict[str, Any]] = {}
    for key, value in assignments.items():
        section, _, field = key.partition(".")
        target = parts.get(section)
        if target is None or field not in attrs.fields_dict(type(target)) or field == "cameras":
            known = [
                f"{name}.{f.name}"
                for name, part in parts.items()
                for f in attrs.fields(type(part))
                if f.name != "cameras"
            ]
            raise ConfigError(
                f"unknown preprocessing setting {key!r}; known: {', '.join(known)}",
                slug="preprocess-override-invalid",
                field="preprocess",
            )
        changes.setdefault(section, {})[field] = value
    try:
        for section, fields in changes.items():
            parts[section] = attrs.evolve(parts[section], **fields)
    except (ArtifactError, TypeError, ValueError) as exc:
        raise ConfigError(
            f"invalid preprocessing override: {exc}",
            slug="preprocess-override-invalid",
            field="preprocess",
        ) from None
    return IOSpec(**parts)
