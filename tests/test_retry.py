"""voiced/retry.py: the one back-off policy (tenacity's exponential wait, with jitter)."""
from __future__ import annotations

import pytest

from voiced.retry import JITTER, Backoff


def test_doubles_from_the_first_delay_up_to_the_maximum_never_above():
    b = Backoff(0.5, 30.0, uniform=lambda lo, hi: 0.0)   # no jitter drawn: the ceilings
    assert [b.next() for _ in range(9)] == [0.5, 1, 2, 4, 8, 16, 30, 30, 30]
    b.reset()
    assert b.failures == 0 and b.next() == 0.5


@pytest.mark.parametrize("failures", [1, 3, 7, 1025, 10**6])
def test_jitter_takes_up_to_its_share_off_and_a_long_outage_never_overflows(failures):
    b = Backoff(1.0, 30.0)
    ceiling = min(30.0, 2.0 ** min(failures - 1, 64))
    delays = [b.delay(failures) for _ in range(200)]
    assert all((1 - JITTER) * ceiling <= d <= ceiling for d in delays)
    assert max(delays) - min(delays) > 0.05 * ceiling   # spread: satellites do not retry in lockstep


def test_the_capture_and_the_remote_engines_use_it():
    import inspect

    from voiced.audio import capture
    from voiced.wyoming import remote

    assert "Backoff(" in inspect.getsource(capture.Capture._run)
    assert "Backoff(" in inspect.getsource(remote.RemoteHealth.__init__)
