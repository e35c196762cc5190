"""``reflex keygen PREFIX``: an ed25519 key pair for signing artifacts."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

HELP = "make an ed25519 key pair: PREFIX.key signs exports, PREFIX.pem goes in --trusted-keys"


def configure(parser: argparse.ArgumentParser, registry: Any) -> None:
    parser.add_argument(
        "prefix",
        type=Path,
        metavar="PREFIX",
        help="writes PREFIX.key (private, mode 0600) and PREFIX.pem (public); never overwrites",
    )


def run(args: argparse.Namespace, pm: Any) -> int:
    from reflex_core.artifact.integrity import generate_keypair, load_private_key, private_key_id

    private, public = generate_keypair(args.prefix)
    ident = private_key_id(load_private_key(private))
    print(f"wrote {private} (keep it secret) and {public} (key id {ident})")
    print(f"sign:   reflex export SOURCE -o DIR --sign-key {private}")
    print(
        f"trust:  copy {public} into a directory DIR_KEYS; reflex serve ... --trusted-keys DIR_KEYS"
    )
    return 0
