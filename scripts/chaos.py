#!/usr/bin/env python3
"""Chaos run (not in CI; tests/test_chaos.py is its bounded CI form): the real daemon on a
private PulseAudio server under random, seeded interleavings of wake-word turns, hotkey
presses, API trigger/say/utterance, SIGHUP with changed [vad]/[wake]/[responder], audio server
kill/restart, a suspended source and SIGTERM/restart; invariants checked throughout (see
tests/support/chaos.py). Prints the counts and exits 1 if an invariant broke.

Usage: .venv/bin/python scripts/chaos.py --minutes 30 [--seed N] [--out chaos.json]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT)]
from support.chaos import ChaosConfig, run_chaos  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=30, help="length of the whole run (default 30)")
    ap.add_argument("--seed", type=int, help="replay a schedule (default: $CHAOS_SEED or random, printed)")
    ap.add_argument("--turn-bound", type=float, help="seconds a probe turn may take after a burst (default 30)")
    ap.add_argument("--loop-deadline", type=float,
                    help="[watchdog] loop_deadline_s written to the config (default 3; 0 = the shipped value)")
    ap.add_argument("--workdir", type=Path, help="keep the config, clips and daemon.log here (default: a temp dir)")
    ap.add_argument("--fail-fast", action="store_true", help="stop at the first broken invariant")
    ap.add_argument("--verbose", action="store_true", help="echo the daemon's log")
    ap.add_argument("--out", type=Path, help="write the result as JSON")
    args = ap.parse_args()
    kw = {"minutes": args.minutes, "workdir": args.workdir, "verbose": args.verbose or None,
          "fail_fast": args.fail_fast or None, "seed": args.seed, "turn_bound_s": args.turn_bound}
    cfg = ChaosConfig.from_env(**kw)
    if args.loop_deadline is not None:
        cfg.loop_deadline_s = args.loop_deadline or None
    result = run_chaos(cfg)
    print(result.failure_message() if result.violations else result.summary())
    if args.out:
        data = {k: (dict(v) if hasattr(v, "items") else v) for k, v in vars(result).items()
                if k not in ("violations", "lifetimes")}
        data["violations"] = {k: {"detail": v.detail, "count": v.count, "at_s": v.at_s}
                              for k, v in result.violations.items()}
        data["lifetimes"] = [vars(life) for life in result.lifetimes]
        args.out.write_text(json.dumps(data, indent=2, default=str))
    return 1 if result.violations else 0


if __name__ == "__main__":
    sys.exit(main())
