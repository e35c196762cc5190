"""GR00T's prompt (Eagle chat format with image placeholders) and the tiny word-level tokenizer.

lerobot 0.4.4's ``GrootEagleEncodeStep`` builds one user turn holding every camera image (in
sorted camera-key order) and then the text ``str([task])`` (the Python repr of a one-element
list), renders it with the Eagle processor's chat template (generation prompt on), and the
processor expands each image into ``<image i><img>`` + ``tokens_per_tile`` x ``<IMG_CONTEXT>``
+ ``</img>``. The model overwrites the ``<IMG_CONTEXT>`` embeddings with the image features.
:func:`prompt_template` states that prompt as a template of the preprocessing contract (the
``<IMG_CONTEXT>`` runs are literal text the tokenizer maps to the image token). torch-free.
"""

from __future__ import annotations

from tokenizers import Tokenizer

from reflex_core.models.tiny_tokenizer import word_level_tokenizer, word_vocabulary

IMAGE_TOKEN = "<IMG_CONTEXT>"
SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<img>", "</img>", IMAGE_TOKEN)
PAD_ID = 0
PUNCTUATION = ("\n", "<", ">", "[", "]", "'", '"', ":", ",", ";", ".", "-", "!", "?", "(", ")", "/")


def prompt_template(num_cameras: int, tokens_per_image: int) -> str:
    """``<|im_start|>user\\n<image 1><img><IMG_CONTEXT>...</img>...['{task}']<|im_end|>\\n
    <|im_start|>assistant\\n``."""
    images = "".join(
        f"<image {i + 1}><img>{IMAGE_TOKEN * tokens_per_image}</img>" for i in range(num_cameras)
    )
    return f"<|im_start|>user\n{images}['{{task}}']<|im_end|>\n<|im_start|>assistant\n"


def tiny_vocabulary() -> list[str]:
    leading = [*SPECIAL_TOKENS, *PUNCTUATION, "user", "assistant", "system", "image"]
    return word_vocabulary(leading, digits=10)


def build_tiny_tokenizer() -> Tokenizer:
    """Word-level, lower-cased, no BOS (Qwen adds none); the chat and image markers are special
    tokens matched before splitting."""
    return word_level_tokenizer(
        tiny_vocabulary(), unk_token="<|endoftext|>", special_tokens=SPECIAL_TOKENS
    )
