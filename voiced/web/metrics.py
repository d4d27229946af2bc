"""GET /metrics in the Prometheus text format (0.0.4), through prometheus_client.

Each app has a registry of its own (tests start several servers in one process) with:
  * a collector that reads daemon.status() at scrape time (counters and gauges whose truth
    lives in the daemon: turns, outcomes, state, devices, VRAM, open event streams);
  * a Histogram of per-stage latency fed by the daemon's turn events (TurnStats keeps only
    a window, a histogram must be cumulative);
  * prometheus_client's process, platform and GC collectors (process_*, python_*).
"""
from __future__ import annotations

import prometheus_client
from prometheus_client import (CollectorRegistry, GCCollector, Histogram, PlatformCollector,
                               ProcessCollector, generate_latest)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from ..pipeline import PipelineState

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4   # "text/plain; version=0.0.4; charset=utf-8"
BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0)
MB = 2 ** 20

# No *_created series: the metric names stay what they were before prometheus_client.
prometheus_client.disable_created_metrics()


def _gauge(name: str, help_text: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, help_text, value=value)


def _counter(name: str, help_text: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, help_text, value=value)


class _StatusCollector:
    """The daemon's status() as metric families, read at each scrape."""

    def __init__(self, owner: "Metrics"):
        self.owner = owner

    def describe(self):   # no describe-time scrape of the daemon at register()
        return []

    def collect(self):
        status = self.owner.daemon.status()
        counts = status["counts"]
        yield _gauge("voiced_up", "1 while the pipeline is alive (the watchdog's truth).", int(status["alive"]))
        yield _gauge("voiced_uptime_seconds", "Seconds since the daemon started.", float(status["uptime_s"]))
        state = GaugeMetricFamily("voiced_state", "1 for the current pipeline state.", labels=["state"])
        for s in PipelineState:
            state.add_metric([s.value], int(s.value == status["state"]))
        yield state
        yield _counter("voiced_turns", "Turns finished.", counts.get("turns", 0))
        outcomes = CounterMetricFamily("voiced_turn_outcomes", "Turns finished, by outcome.", labels=["outcome"])
        for key, value in sorted(counts.items()):
            if key.startswith("outcome_"):
                outcomes.add_metric([key[len("outcome_"):]], value)
        yield outcomes
        yield _counter("voiced_errors", "Turns that ended in an error.", counts.get("errors", 0))
        yield _counter("voiced_recoveries", "Engine or device recoveries.", counts.get("recoveries", 0))
        spec = CounterMetricFamily(
            "voiced_speculations",
            "Answers started at a pause before the end of the turn was confirmed, by what became of them.",
            labels=["result"])
        for r in ("started", "used", "discarded"):
            spec.add_metric([r], counts.get(f"speculations_{r}", 0))
        yield spec
        eot = CounterMetricFamily("voiced_end_of_turn",
                                  "Requests ended, by what decided: the end-of-turn model or silence.", labels=["by"])
        for b in ("model", "silence"):
            eot.add_metric([b], counts.get(f"end_of_turn_{b}", 0))
        yield eot
        yield _counter("voiced_input_reopens", "Times the microphone was reopened.",
                       status["input"].get("reopens", 0))
        yield _gauge("voiced_input_ok", "1 while the microphone delivers audio.", int(status["input"]["ok"]))
        yield _gauge("voiced_output_ok", "0 after the speaker failed.", int(status["output"]["ok"]))
        yield _gauge("voiced_sse_clients", "Open /api/events streams.", self.owner.sse_clients)
        gpu = status.get("gpu")   # recovery.GpuManager.vram(); no MB figures after a driver fault
        if gpu and "used_mb" in gpu:
            yield _gauge("voiced_gpu_vram_used_bytes", "GPU memory in use (all processes).", gpu["used_mb"] * MB)
            yield _gauge("voiced_gpu_vram_total_bytes", "GPU memory in all.", gpu["total_mb"] * MB)
            if gpu.get("limit_mb"):
                yield _gauge("voiced_gpu_vram_limit_bytes", "voiced's per-process GPU memory cap.",
                             gpu["limit_mb"] * MB)
            yield _gauge("voiced_gpu_vram_allocated_bytes", "GPU memory allocated by voiced's torch.",
                         gpu["allocated_mb"] * MB)


class Metrics:
    def __init__(self, daemon):
        self.daemon = daemon
        self.sse_clients = 0   # the event streams count themselves here (web/sse.py)
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_StatusCollector(self))
        self.stage_latency = Histogram("voiced_stage_latency_seconds", "Seconds per turn stage.", ["stage"],
                                       buckets=BUCKETS, registry=self.registry)
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        self.close = daemon.events.subscribe(self._on_event)

    def _on_event(self, event: dict) -> None:
        if event.get("type") != "turn":
            return
        for stage, seconds in (event.get("timings") or {}).items():
            self.stage_latency.labels(stage=stage).observe(seconds)

    def render(self) -> str:
        return generate_latest(self.registry).decode()
