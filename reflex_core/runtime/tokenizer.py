"""The prompt tokenizer: the artifact's ``tokenizer.json`` through the ``tokenizers`` library.

Matches the Hugging Face fast tokenizer the checkpoints were trained with (``padding=
"max_length"``, ``padding_side="right"``, ``truncation=True``): the file's own post-processor
adds BOS, truncation keeps room for it, and padding uses the artifact's pad id.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tokenizers import Tokenizer

from reflex_core.errors import ArtifactError


class PromptTokenizer:
    """Encode prompts to fixed-length ``tokens`` (int64) and ``token_masks`` (bool)."""

    def __init__(
        self,
        tokenizer: Tokenizer,
        max_length: int,
        pad_id: int = 0,
        add_special_tokens: bool = True,
    ) -> None:
        if max_length <= 0:
            raise ArtifactError(
                f"tokenizer max_length must be > 0, got {max_length}", slug="artifact-schema"
            )
        self.max_length = int(max_length)
        self.pad_id = int(pad_id)
        self.add_special_tokens = bool(add_special_tokens)
        self._tokenizer = tokenizer
        # The same ids and masks without computing character offsets (nobody reads them here):
        # about a third cheaper per prompt. Older tokenizers releases lack it.
        self._encode_batch = getattr(tokenizer, "encode_batch_fast", tokenizer.encode_batch)
        pad_token = tokenizer.id_to_token(self.pad_id) or "<pad>"
        tokenizer.enable_truncation(self.max_length)
        tokenizer.enable_padding(
            length=self.max_length, pad_id=self.pad_id, pad_token=pad_token, direction="right"
        )

    @classmethod
    def for_artifact(cls, artifact: Any) -> PromptTokenizer:
        """The tokenizer an :class:`~reflex_core.artifact.Artifact` records, as it records it."""
        spec = artifact.tokenizer
        return cls.from_file(
            artifact.tokenizer_path, spec.max_length, spec.pad_id, spec.add_special_tokens
        )

    @classmethod
    def from_file(
        cls, path: str | Path, max_length: int, pad_id: int = 0, add_special_tokens: bool = True
    ) -> PromptTokenizer:
        """Load ``tokenizer.json``.

        :raises ArtifactError: ``artifact-missing`` when the file does not exist,
            ``artifact-schema`` when the tokenizers library cannot read it.
        """
        p = Path(path)
        if not p.is_file():
            raise ArtifactError(f"tokenizer file {p} does not exist", slug="artifact-missing")
        try:
            tok = Tokenizer.from_file(str(p))
        except Exception as exc:  # the Rust side raises a plain Exception
            raise ArtifactError(
                f"cannot read tokenizer {p}: {exc}", slug="artifact-schema"
            ) from exc
        return cls(tok, max_length, pad_id, add_special_tokens)

    def encode(self, prompts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """:returns: tokens int64 (B, max_length), token_masks bool (B, max_length)."""
        if not prompts:
            empty = np.zeros((0, self.max_length))
            return empty.astype(np.int64), empty.astype(np.bool_)
        encodings = self._encode_batch(list(prompts), add_special_tokens=self.add_special_tokens)
        tokens = np.array([e.ids for e in encodings], dtype=np.int64)
        masks = np.array([e.attention_mask for e in encodings], dtype=np.bool_)
        return tokens, masks
