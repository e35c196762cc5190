"""How old an observation is by the time its action chunk is ready.

The robot acts on a chunk computed from an observation taken earlier: the capture-to-receive
delay (camera, encoding, network) plus the time the request spent in the server. Wedges that
reason about that staleness (the A2C2 correction head, the router's shadow records that train
it) must measure it the same way, so it is measured here.
"""

from __future__ import annotations

import time

from reflex_core.plugin.wedges import ActRequest

# A capture timestamp further in the past than this is taken as clock skew between the robot
# and the server (not a real delay) and ignored, rather than reported as a minutes-long latency.
MAX_PLAUSIBLE_CAPTURE_DELAY_NS = 10_000_000_000


def capture_delay_ns(request: ActRequest, *, wall_now_ns: int, mono_now_ns: int) -> int | None:
    """Capture-to-receive delay from the observation's wall-clock ``capture_time_ns``; None when
    the observation has none or the clocks disagree (negative or implausibly large)."""
    captured = request.observation.capture_time_ns
    if captured is None:
        return None
    received_wall_ns = wall_now_ns - (mono_now_ns - request.received_ns)
    delay = received_wall_ns - captured
    if delay < 0 or delay > MAX_PLAUSIBLE_CAPTURE_DELAY_NS:
        return None
    return delay


def observation_age_ms(
    request: ActRequest, *, mono_now_ns: int | None = None, wall_now_ns: int | None = None
) -> float:
    """Milliseconds from capture (or from receipt, without a usable capture time) to now.

    :param mono_now_ns: ``time.monotonic_ns()`` now (injectable for tests).
    :param wall_now_ns: ``time.time_ns()`` now (injectable for tests).
    """
    mono = time.monotonic_ns() if mono_now_ns is None else mono_now_ns
    wall = time.time_ns() if wall_now_ns is None else wall_now_ns
    age = max(0, mono - request.received_ns)
    delay = capture_delay_ns(request, wall_now_ns=wall, mono_now_ns=mono)
    return (age + (delay or 0)) / 1e6
