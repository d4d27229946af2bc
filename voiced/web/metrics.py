"""GET /metrics in the Prometheus text format (0.0.4), written by hand: a few counters and
gauges read from daemon.status() at scrape time, and per-stage latency histograms fed by
the daemon's turn events (TurnStats keeps only a window, a histogram must be cumulative)."""
from __future__ import annotations

import threading

from ..pipeline import PipelineState

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0)


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class Metrics:
    def __init__(self, daemon):
        self.daemon = daemon
        self._lock = threading.Lock()
        self._hist: dict[str, list] = {}   # stage -> [bucket counts..., sum, count]
        self.sse_clients = 0
        self.close = daemon.events.subscribe(self._on_event)

    def _on_event(self, event: dict) -> None:
        if event.get("type") != "turn":
            return
        with self._lock:
            for stage, seconds in (event.get("timings") or {}).items():
                h = self._hist.setdefault(stage, [0] * len(BUCKETS) + [0.0, 0])
                for i, bound in enumerate(BUCKETS):
                    if seconds <= bound:
                        h[i] += 1
                h[-2] += seconds
                h[-1] += 1

    def render(self) -> str:
        status = self.daemon.status()
        out: list[str] = []

        def metric(name: str, kind: str, help_text: str, samples: list[tuple[str, float]]) -> None:
            out.append(f"# HELP {name} {help_text}")
            out.append(f"# TYPE {name} {kind}")
            out.extend(f"{name}{labels} {value:g}" if isinstance(value, float) else f"{name}{labels} {value}"
                       for labels, value in samples)

        counts = status["counts"]
        metric("voiced_up", "gauge", "1 while the pipeline is alive (the watchdog's truth).",
               [("", int(status["alive"]))])
        metric("voiced_uptime_seconds", "gauge", "Seconds since the daemon started.", [("", float(status["uptime_s"]))])
        metric("voiced_state", "gauge", "1 for the current pipeline state.",
               [(f'{{state="{s.value}"}}', int(s.value == status["state"])) for s in PipelineState])
        metric("voiced_turns_total", "counter", "Turns finished.", [("", counts.get("turns", 0))])
        outcomes = sorted((k[len("outcome_"):], v) for k, v in counts.items() if k.startswith("outcome_"))
        metric("voiced_turn_outcomes_total", "counter", "Turns finished, by outcome.",
               [(f'{{outcome="{_label(k)}"}}', v) for k, v in outcomes])
        metric("voiced_errors_total", "counter", "Turns that ended in an error.", [("", counts.get("errors", 0))])
        metric("voiced_recoveries_total", "counter", "Engine or device recoveries.",
               [("", counts.get("recoveries", 0))])
        metric("voiced_speculations_total", "counter",
               "Answers started at a pause before the end of the turn was confirmed, by what became of them.",
               [(f'{{result="{r}"}}', counts.get(f"speculations_{r}", 0)) for r in ("started", "used", "discarded")])
        metric("voiced_end_of_turn_total", "counter", "Requests ended, by what decided: the end-of-turn model or silence.",
               [(f'{{by="{b}"}}', counts.get(f"end_of_turn_{b}", 0)) for b in ("model", "silence")])
        metric("voiced_input_reopens_total", "counter", "Times the microphone was reopened.",
               [("", status["input"].get("reopens", 0))])
        metric("voiced_input_ok", "gauge", "1 while the microphone delivers audio.", [("", int(status["input"]["ok"]))])
        metric("voiced_output_ok", "gauge", "0 after the speaker failed.", [("", int(status["output"]["ok"]))])
        metric("voiced_sse_clients", "gauge", "Open /api/events streams.", [("", self.sse_clients)])
        gpu = status.get("gpu")   # recovery.GpuManager.vram(); no MB figures after a driver fault
        if gpu and "used_mb" in gpu:
            mb = 2 ** 20
            metric("voiced_gpu_vram_used_bytes", "gauge", "GPU memory in use (all processes).",
                   [("", gpu["used_mb"] * mb)])
            metric("voiced_gpu_vram_total_bytes", "gauge", "GPU memory in all.", [("", gpu["total_mb"] * mb)])
            if gpu.get("limit_mb"):
                metric("voiced_gpu_vram_limit_bytes", "gauge", "voiced's per-process GPU memory cap.",
                       [("", gpu["limit_mb"] * mb)])
            metric("voiced_gpu_vram_allocated_bytes", "gauge", "GPU memory allocated by voiced's torch.",
                   [("", gpu["allocated_mb"] * mb)])
        out.append("# HELP voiced_stage_latency_seconds Seconds per turn stage.")
        out.append("# TYPE voiced_stage_latency_seconds histogram")
        with self._lock:
            for stage, h in sorted(self._hist.items()):
                s = _label(stage)
                for bound, n in zip(BUCKETS, h[:len(BUCKETS)], strict=True):
                    out.append(f'voiced_stage_latency_seconds_bucket{{stage="{s}",le="{bound:g}"}} {n}')
                out.append(f'voiced_stage_latency_seconds_bucket{{stage="{s}",le="+Inf"}} {h[-1]}')
                out.append(f'voiced_stage_latency_seconds_sum{{stage="{s}"}} {h[-2]:g}')
                out.append(f'voiced_stage_latency_seconds_count{{stage="{s}"}} {h[-1]}')
        return "\n".join(out) + "\n"
