"""/metrics and /api/events: the hand-written code before the swap (read from git, commit
LEGACY) against prometheus_client and sse-starlette (this checkout), in one run.

    .venv/bin/python benchmarks/swap_web.py [--scrapes 2000] [--events 3000]

metrics  CPU per scrape (render only), a daemon with 8 stages x 200 turns of histograms.
         The new output is larger: it adds prometheus_client's process_* and python_*
         families (about 20 more samples), so its figure includes those.
sse      CPU per 1000 events through a real uvicorn server to an httpx client in this process
         (hub publish -> queue -> encode -> socket -> client parse), wall time to deliver them.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import socket
import subprocess
import sys
import threading
import time
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
LEGACY = "88bf368"   # the last commit with the hand-written metrics.py and sse.py


def legacy_module(path: str, name: str):
    source = subprocess.run(["git", "-C", str(ROOT), "show", f"{LEGACY}:{path}"], check=True,
                            capture_output=True, text=True).stdout
    spec = importlib.util.spec_from_loader(f"voiced.web.{name}", loader=None)
    module = importlib.util.module_from_spec(spec)
    module.__package__ = "voiced.web"
    exec(compile(source, f"{LEGACY}:{path}", "exec"), module.__dict__)
    return module


class FakeDaemon:
    def __init__(self):
        from voiced.events import EventHub
        self.events = EventHub()

    def status(self):
        return {"counts": {"turns": 1600, "outcome_ok": 1500, "outcome_no_speech": 100, "errors": 3,
                           "recoveries": 1, "speculations_started": 40, "speculations_used": 30,
                           "end_of_turn_model": 900, "end_of_turn_silence": 700},
                "alive": True, "uptime_s": 86400.0, "state": "idle", "input": {"ok": True, "reopens": 2},
                "output": {"ok": True}, "gpu": None}


def bench_metrics(scrapes: int) -> None:
    from voiced.web import metrics as new
    old = legacy_module("voiced/web/metrics.py", "_legacy_metrics")
    print(f"metrics: {scrapes} scrapes, 8 stages x 200 turns")
    for label, module in (("legacy hand-written", old), ("prometheus_client", new)):
        daemon = FakeDaemon()
        m = module.Metrics(daemon)
        for i in range(200):
            daemon.events.publish("turn", timings={f"stage{k}": 0.01 * (i % 50) * (k + 1) for k in range(8)})
        text = m.render()
        best = float("inf")
        for _ in range(3):
            t0 = time.process_time()
            for _ in range(scrapes):
                m.render()
            best = min(best, time.process_time() - t0)
        print(f"  {label:<22} {1e6 * best / scrapes:8.1f} us CPU/scrape  {len(text):6d} bytes  "
              f"{sum(1 for line in text.splitlines() if not line.startswith('#')):4d} samples", flush=True)
        m.close()


def bench_sse(events: int) -> None:
    import httpx
    import uvicorn
    from starlette.applications import Starlette
    from starlette.responses import StreamingResponse
    from starlette.routing import Route

    from voiced.web import sse as new
    old = legacy_module("voiced/web/sse.py", "_legacy_sse")
    print(f"sse: {events} events through uvicorn to an httpx client")
    for label, module, route in (("legacy StreamingResponse", old, "old"),
                                 ("sse-starlette", new, "new"),
                                 ("new Streams.stream() shim", new, "old")):
        daemon, metrics = FakeDaemon(), types.SimpleNamespace(sse_clients=0)
        streams = module.Streams(daemon.events, metrics)

        async def endpoint(_request, streams=streams, route=route):
            hello = {"type": "hello", "state": "idle"}
            if route == "new":
                return streams.response(hello)
            return StreamingResponse(streams.stream(hello), media_type="text/event-stream")

        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        server = uvicorn.Server(uvicorn.Config(Starlette(routes=[Route("/e", endpoint)]), log_config=None,
                                               access_log=False, lifespan="off"))
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        while not server.started:
            time.sleep(0.01)
        got = 0
        with httpx.Client(timeout=30) as client, \
                client.stream("GET", f"http://127.0.0.1:{sock.getsockname()[1]}/e") as stream:
            lines = stream.iter_lines()
            next(line for line in lines if line.startswith("data:"))
            t0, w0 = time.process_time(), time.perf_counter()

            def publish():
                for i in range(events):
                    daemon.events.publish("state", state="listening", previous="idle", n=i)
                    if i % 50 == 49:
                        time.sleep(0.005)   # breathing room: no drops from the 256-event queue
            threading.Thread(target=publish, daemon=True).start()
            for line in lines:
                if line.startswith("data:"):
                    got += 1
                    if json.loads(line[5:])["n"] == events - 1:
                        break
            cpu, wall = time.process_time() - t0, time.perf_counter() - w0
        streams.close_all()
        server.should_exit = True
        thread.join(5)
        print(f"  {label:<25} {1000 * cpu / got * 1000:7.1f} ms CPU/1000 events  {wall:6.2f} s wall  "
              f"{got} of {events} delivered", flush=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scrapes", type=int, default=2000)
    ap.add_argument("--events", type=int, default=3000)
    args = ap.parse_args(argv)
    bench_metrics(args.scrapes)
    bench_sse(args.events)
    return 0


if __name__ == "__main__":
    sys.exit(main())
