"""Reconnect delays: exponential, capped, with jitter. Pure (the random source is passed in).

After a broker outage 50,000 vehicles lose their connection at the same moment; without jitter they
would all come back at the same moments too (1 s, 2 s, 4 s ...) and hit the broker in waves. "Equal
jitter" keeps half of the exponential delay and randomises the other half: the fleet spreads out,
and no vehicle retries faster than half its current step.
"""

from __future__ import annotations

import random


def reconnect_delay_s(failures: int, min_s: float, max_s: float, rng: random.Random) -> float:
    """Delay before the next connection attempt after `failures` consecutive failed ones (>= 1).

    The step is min_s * 2**(failures-1), capped at max_s; the delay is uniform in [step/2, step].
    """
    if failures < 1:
        return 0.0
    step = min(max_s, min_s * 2 ** min(failures - 1, 62))
    return step / 2 + rng.uniform(0, step / 2)
