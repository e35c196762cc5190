"""The small word-level tokenizer shipped with the built-in tiny checkpoints.

Real pi0 / pi0.5 checkpoints use the (gated) PaliGemma SentencePiece tokenizer. The tiny
checkpoints need a real ``tokenizer.json`` with the same conventions (pad 0, eos 1, bos 2
prepended by the post-processor) but a vocabulary small enough for a 64-wide embedding: the
digits ``0``..``255`` of the pi0.5 state bins, the punctuation of the prompt formats, and a list
of words robot instructions use. Unknown words map to ``<unk>``. torch-free.

Another family's tiny tokenizer (other special tokens, no BOS...) is built from the same parts:
:func:`word_vocabulary` and :func:`word_level_tokenizer` (e.g. ``reflex_groot.prompt``).
"""

from __future__ import annotations

from collections.abc import Sequence

from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers, processors

PAD_ID, EOS_ID, BOS_ID, UNK_ID = 0, 1, 2, 3
SPECIAL_TOKENS = ("<pad>", "<eos>", "<bos>", "<unk>")
# Everything the pi0 ("text\n") and pi0.5 ("Task: ..., State: ...;\nAction: ") prompts use.
PUNCTUATION = (":", ",", ";", ".", "\n", "'", "-", "!", "?", "(", ")", "/", "+", "=", '"')
WORDS = """
task state action
a an the this that these those it its of to in into on onto at from with without by for
and or then next after before until while up down over under above below behind front
left right top bottom middle center side near far inside outside between around back
pick place put move push pull lift lower drop grab grasp hold release open close turn
rotate slide stack unstack insert remove take bring give pour wipe clean fold unfold
press flip hang set get go reach point wave stop wait start finish make use
block cube cup mug bowl plate box lid drawer door cabinet shelf table counter sink
stove oven microwave fridge towel cloth sponge bottle can jar spoon fork knife pan pot
ball toy pen marker book paper bag basket tray rack button switch handle knob cable
peg hole slot tower object item thing piece part apple banana orange carrot lemon
red green blue yellow orange purple pink black white gray grey brown small big large
tiny tall short long round square empty full first second third last other same
one two three four five six seven eight nine ten all both each every some
robot arm gripper hand camera wrist base
""".split()


def word_vocabulary(leading: Sequence[str], digits: int) -> list[str]:
    """``leading`` tokens, the numbers ``0``..``digits - 1``, then :data:`WORDS` not yet in the
    list: the token strings in id order (ids are list positions)."""
    vocab: list[str] = list(leading) + [str(i) for i in range(digits)]
    seen = set(vocab)
    for word in WORDS:
        if word not in seen:
            vocab.append(word)
            seen.add(word)
    return vocab


def word_level_tokenizer(
    vocab: Sequence[str], *, unk_token: str, special_tokens: Sequence[str]
) -> Tokenizer:
    """A word-level tokenizer over ``vocab`` (ids are list positions): NFKC and lower-cased
    input; words, single punctuation marks and newlines are tokens, other whitespace separates
    them; ``special_tokens`` are matched before splitting. No post-processor (add one for a
    BOS)."""
    tokenizer = Tokenizer(
        models.WordLevel({token: i for i, token in enumerate(vocab)}, unk_token=unk_token)
    )
    tokenizer.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    tokenizer.pre_tokenizer = pre_tokenizers.Split(
        Regex(r"\w+|[^\w\s]|\n"), behavior="removed", invert=True
    )
    tokenizer.add_special_tokens(list(special_tokens))
    return tokenizer


def tiny_vocabulary() -> list[str]:
    """The token strings in id order (ids are list positions)."""
    return word_vocabulary([*SPECIAL_TOKENS, *PUNCTUATION], digits=256)


def build_tiny_tokenizer() -> Tokenizer:
    """A word-level tokenizer over :func:`tiny_vocabulary` (lower-cased input, BOS prepended)."""
    tokenizer = word_level_tokenizer(
        tiny_vocabulary(), unk_token="<unk>", special_tokens=SPECIAL_TOKENS
    )
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<bos> $A",
        pair="<bos> $A $B",
        special_tokens=[("<bos>", BOS_ID)],
    )
    return tokenizer
