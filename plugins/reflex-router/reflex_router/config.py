"""The router's options and config (``reflex serve --policy-b DIR --split 20`` or ``[router]``)."""

from __future__ import annotations

import attrs

from reflex_core.plugin import count, duration, in_range, setting


@attrs.frozen
class RouterConfig:
    """Each field is a ``reflex serve`` flag and a key of the ``[router]`` table.

    :ivar policy_a: artifact dir of slot A; None: slot A is the server's own (``default``) policy.
    :ivar policy_b: artifact dir of slot B (required once the router is on).
    :ivar split: percent of traffic for B; in shadow mode, percent of traffic mirrored to B.
        None: 50 in A/B mode, 100 in shadow mode.
    :ivar shadow: always answer with A; run B on a copy of the traffic and record both.
    :ivar shadow_log: JSONL file for the shadow records (None: metrics only).
    :ivar router_trip_after: consecutive server-side errors that take a slot out of rotation.
    :ivar router_cooldown_s: how long a tripped slot rests before it is tried again.
    :ivar shadow_max_pending: shadow calls in flight beyond which mirroring is skipped, so a
        slow B can never pile up work behind A.
    """

    policy_a: str | None = setting(
        "artifact dir for router slot A (default: the served policy)", metavar="DIR"
    )
    policy_b: str | None = setting(
        "artifact dir for router slot B; enables the router", metavar="DIR"
    )
    split: float | None = setting(
        "percent of traffic routed to B, sticky per episode_id (shadow: percent mirrored); "
        "default 50 (shadow: 100)",
        type=in_range(0, 100),
        metavar="PCT",
    )
    shadow: bool = setting(
        "answer with A, run B on a copy of the traffic and record both", is_flag=True
    )
    shadow_log: str | None = setting(
        "append-only JSONL file for shadow records (A and B chunks and their difference)",
        metavar="PATH",
    )
    router_trip_after: int = count(
        "consecutive errors that drain a slot's traffic to the other", default=3
    )
    router_cooldown_s: float = duration(
        "seconds a drained slot rests before it is retried", default=30.0
    )
    shadow_max_pending: int = count(
        "shadow calls in flight beyond which mirroring is skipped", default=16
    )

    @property
    def effective_split(self) -> float:
        if self.split is not None:
            return self.split
        return 100.0 if self.shadow else 50.0


def is_enabled(config: RouterConfig) -> bool:
    """On as soon as any router-only option is given; the factory then insists on
    ``--policy-b`` (a ``--split`` or ``--shadow`` without a second policy is an error, not a
    silently ignored flag)."""
    return (
        config.policy_a is not None
        or config.policy_b is not None
        or config.split is not None
        or config.shadow
        or config.shadow_log is not None
    )
