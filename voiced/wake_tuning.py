"""`voiced doctor --wake`: live wake word scores, to choose [wake] threshold by ear.

Prints the highest score per model every half second (a bar against the threshold) and a
line for each detection, from the microphone or from recordings (--file). The summary says
how close non-wake audio came, which is what a user tuning false wakes needs to know.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from .config import Settings
from .triggers.wakeword import FRAME_SAMPLES, SAMPLE_RATE, WakeWordDetector

REPORT_EVERY_S = 0.5
BAR = 30


@dataclass
class WakeScores:
    """Running maxima and detections over the audio fed so far."""
    threshold: float
    peak: dict[str, tuple[float, float]] = field(default_factory=dict)   # model -> (score, at s)
    detections: list[tuple[float, str, float]] = field(default_factory=list)

    def add(self, scores: dict[str, float], at_s: float) -> None:
        for name, score in scores.items():
            if score > self.peak.get(name, (-1.0, 0.0))[0]:
                self.peak[name] = (score, at_s)

    def summary(self) -> list[str]:
        lines = []
        for name, (score, at) in sorted(self.peak.items()):
            fired = [d for d in self.detections if d[1] == name]
            lines.append(f"{name}: highest score {score:.3f} at {at:.1f} s; {len(fired)} detection(s) "
                         f"at threshold {self.threshold:g}")
        top = max((s for s, _ in self.peak.values()), default=0.0)
        if not self.detections and top >= 0.1:
            lines.append(f"no detection. If you said the wake word, a threshold below {top:.2f} would have "
                         "caught it (and false wakes grow as it drops).")
        elif not self.detections:
            lines.append("no detection; nothing wake-like was heard.")
        return lines


def bar(score: float, threshold: float) -> str:
    filled = int(round(min(max(score, 0.0), 1.0) * BAR))
    mark = int(round(threshold * BAR))
    cells = ["#" if i < filled else " " for i in range(BAR)]
    cells[min(mark, BAR - 1)] = "|" if cells[min(mark, BAR - 1)] == " " else "+"
    return "".join(cells)


def score_frames(detector: WakeWordDetector, frames, out=print) -> WakeScores:
    """Feed 80 ms frames; print a line per half second and per detection."""
    result = WakeScores(detector.settings.threshold)
    window: dict[str, float] = {}
    start, next_report = detector.audio_time_s, REPORT_EVERY_S
    for frame in frames:
        detection = detector.process(frame)
        at = detector.audio_time_s - start
        result.add(detector.scores, at)
        for name, score in detector.scores.items():
            window[name] = max(window.get(name, 0.0), score)
        if detection is not None:
            result.detections.append((at, detection.model, detection.score))
            out(f"{at:7.2f} s  DETECTED {detection.model} (score {detection.score:.3f})")
        if at >= next_report:
            next_report += REPORT_EVERY_S
            out(f"{at:7.2f} s  " + "  ".join(f"{n} {s:.3f} [{bar(s, result.threshold)}]" for n, s in sorted(window.items())))
            window = {}
    return result


def file_frames(path: str):
    from .audio.decode import decode_audio

    audio = decode_audio(path, rate=SAMPLE_RATE)
    audio = np.concatenate([audio, np.zeros(SAMPLE_RATE // 2, np.float32)])   # let the last word finish
    for i in range(0, len(audio) - FRAME_SAMPLES + 1, FRAME_SAMPLES):
        yield audio[i:i + FRAME_SAMPLES]


def mic_frames(settings: Settings, seconds: float):
    from .audio.capture import Capture

    capture = Capture(settings.audio)
    capture.start()
    try:
        if not capture.wait_open(5.0):
            raise OSError(f"the microphone did not open: {capture.health().detail}")
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            frame = capture.read(timeout=0.5)
            if frame is not None:
                yield frame
    finally:
        capture.stop()


def run_wake_scores(settings: Settings, files: list[str], seconds: float) -> int:
    """0 when every source was scored; 65 if a file cannot be decoded, 1 if the mic fails."""
    from .audio.decode import UnreadableAudio
    from .models.openwakeword_assets import assets_dir

    detector = WakeWordDetector(settings.wake, assets_dir(settings))
    print(f"wake words {', '.join(detector.names)}; threshold {settings.wake.threshold:g} "
          f"(the | in each bar); trigger_level {settings.wake.trigger_level}")
    sources = [(f, lambda f=f: file_frames(f)) for f in files] or \
              [(f"microphone, {seconds:g} s (Ctrl-C ends)", lambda: mic_frames(settings, seconds))]
    for label, frames in sources:
        print(f"-- {label}")
        detector.reset()
        try:
            result = score_frames(detector, frames())
        except KeyboardInterrupt:
            print("stopped")
            return 130
        except UnreadableAudio as exc:
            print(f"voiced: cannot read {label}: {exc}")
            return 65   # EX_DATAERR, as `voiced transcribe`
        except OSError as exc:
            print(f"voiced: {exc}; check the audio server and audio.input_device (voiced doctor)")
            return 1
        for line in result.summary():
            print("   " + line)
    return 0
