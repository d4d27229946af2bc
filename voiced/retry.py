"""Exponential back-off with jitter, the one policy for everything voiced retries: the
microphone's reopen (audio/capture.py) and the remote Wyoming engines (wyoming/remote.py,
which the remote wake word shares).

The delay's ceiling comes from tenacity's wait_exponential (initial x 2^(n-1), capped at the
maximum; it caps instead of overflowing after 1024 failures in a row); jitter takes up to
JITTER of it off at random, so retries never come later than the logged "back-off up to N s",
and several satellites that lost one server do not all come back in the same instant.
Only the wait policy is tenacity's: the loops that wait stay where they are (they wait on
events that end the wait early: a stop, or another role finding the remote back).
"""
from __future__ import annotations

import random
from collections.abc import Callable

from tenacity import RetryCallState, wait_exponential

JITTER = 0.2   # up to 20 % off each delay


class Backoff:
    """Delays for failures in a row: `next()` after each failure, `reset()` after a success."""

    def __init__(self, initial: float, maximum: float, jitter: float = JITTER,
                 uniform: Callable[[float, float], float] = random.uniform):
        self.initial, self.maximum, self.jitter = float(initial), float(maximum), float(jitter)
        self._wait = wait_exponential(multiplier=self.initial, max=self.maximum, exp_base=2)
        self._uniform = uniform
        self.failures = 0

    def delay(self, failures: int) -> float:
        """The wait after `failures` failures in a row (1 = the first): in
        [(1 - jitter) x ceiling, ceiling], ceiling = min(initial x 2^(failures-1), maximum)."""
        state = RetryCallState(retry_object=None, fn=None, args=(), kwargs={})
        state.attempt_number = max(1, int(failures))
        ceiling = self._wait(state)
        return ceiling * (1.0 - self.jitter * self._uniform(0.0, 1.0))

    def next(self) -> float:
        """Count one more failure; the wait before the next try."""
        self.failures += 1
        return self.delay(self.failures)

    def reset(self) -> None:
        self.failures = 0
