"""GPU fault recovery, with faults of torch's real types and messages injected.

No GPU here: a fake `cuda` object stands for torch.cuda (healthy or broken), and the "GPU"
engines are thin wrappers that raise what torch raises, in front of the real engines. The
CPU fallbacks are real: Whisper transcribing the JFK clip, Piper speaking.
"""
from __future__ import annotations

import logging
import threading
import time

import numpy as np
import pytest

from tests.fixtures_stt import jfk_audio, stt_settings, wer, whisper_stt, words  # noqa: F401  (fixtures)
from voiced.config import Settings, TtsSettings
from voiced.engines.base import PLAIN, EngineError, EngineInfo, FatalEngineError, OutOfMemory, Transcript
from voiced.engines.build import recovering_tts, tts_settings_for
from voiced.engines.errors import classify
from voiced.gpu import GpuManager, MiB, adapt_fraction
from voiced.recovery import RecoveringEngine, remaining_text

torch = pytest.importorskip("torch")
GiB = 2 ** 30
OOM_MSG = ("CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of 23.64 GiB "
           "of which 1.12 GiB is free. Of the allocated memory 20.9 GiB is allocated by PyTorch")
ILLEGAL = "CUDA error: an illegal memory access was encountered"
ASSERT = "CUDA error: device-side assert triggered"


def oom():
    return torch.cuda.OutOfMemoryError(OOM_MSG)


def whisper_wrapped(message: str) -> EngineError:
    """What WhisperSTT._guard raises for a CUDA RuntimeError: EngineError from the original."""
    try:
        try:
            raise RuntimeError(message)
        except RuntimeError as exc:
            raise EngineError(f"Whisper failed: {exc}") from exc
    except EngineError as wrapped:
        return wrapped


# ---------------------------------------------------------------- fakes for the GPU itself
class FakeCuda:
    """Stands for torch.cuda: `healthy` decides what the probe allocation does."""

    def __init__(self, healthy=True, free=20 * GiB, total=24 * GiB, available=True):
        self.healthy, self.free, self.total, self.available = healthy, free, total, available
        self.fraction_set: float | None = None
        self.emptied = self.probes = 0

    def is_available(self):
        return self.available

    def probe(self):
        self.probes += 1
        if not self.healthy:
            raise RuntimeError(ILLEGAL)

    def mem_get_info(self):
        if not self.healthy:
            raise RuntimeError(ILLEGAL)
        return self.free, self.total

    def set_per_process_memory_fraction(self, fraction):
        self.fraction_set = fraction

    def empty_cache(self):
        self.emptied += 1

    def memory_allocated(self):
        return 3 * GiB

    def memory_reserved(self):
        return 4 * GiB

    def device_name(self):
        return "Simulated GPU"


class SimulatedGpuStt:
    """Whisper "on the GPU": each call first takes the next scripted fault (None = none),
    raising it as torch would, else answers through the real engine underneath."""

    def __init__(self, real, faults=()):
        self.real, self.faults, self.calls = real, list(faults), 0
        self.active = 0

    def load(self):
        return EngineInfo("whisper", "cuda", "simulated")

    def warmup(self):
        pass

    def transcribe(self, audio, *args):
        self.calls += 1
        self.active += 1
        try:
            assert self.active == 1, "two requests inside the GPU engine at once"
            fault = self.faults.pop(0) if self.faults else None
            if fault is not None:
                raise fault
            if self.real is None:
                time.sleep(0.01)
                return Transcript("canned", 0.0, audio.size / 16_000)
            return self.real.transcribe(audio, *args)
        finally:
            self.active -= 1


class Builds:
    """The engine factory a RecoveringEngine gets: scripted GPU engines; for the CPU a real
    engine already loaded, or `cpu_build()` (the project's factory, building from scratch)."""

    def __init__(self, gpu_engines, cpu_engine=None, cpu_info=None, cpu_build=None):
        self.gpu_engines, self.cpu_engine, self.cpu_build, self.devices = list(gpu_engines), cpu_engine, cpu_build, []
        self.cpu_info = cpu_info or EngineInfo("whisper", "cpu", "real")

    def __call__(self, device):
        self.devices.append(device)
        if device == "cuda":
            engine = self.gpu_engines.pop(0)
            return engine, engine.load()
        return self.cpu_build() if self.cpu_build else (self.cpu_engine, self.cpu_info)


@pytest.fixture(scope="module")
def cpu_whisper(whisper_stt, stt_settings):  # noqa: F811
    """The real Whisper on the CPU: the session's engine when it is on the CPU already."""
    from voiced.engines.stt_whisper import WhisperSTT

    if whisper_stt.info.device == "cpu":
        return whisper_stt
    engine = WhisperSTT(stt_settings.stt.model_copy(update={"device": "cpu"}), stt_settings)
    engine.load()
    engine.warmup()
    return engine


@pytest.fixture(scope="module")
def short_clip():
    return jfk_audio()[: int(3.3 * 16_000)]        # "And so my fellow Americans"


def rig(gpu_engines, cpu_engine=None, cuda=None, wanted="auto", cpu_build=None):
    gpu = GpuManager(Settings(), cuda or FakeCuda())
    build = Builds(gpu_engines, cpu_engine, cpu_build=cpu_build)
    engine = RecoveringEngine("stt", build, gpu, wanted)
    engine.load()
    return engine, gpu, build


# ---------------------------------------------------------------- classification
@pytest.mark.parametrize("exc, kind", [
    (torch.cuda.OutOfMemoryError(OOM_MSG), "oom"),
    (OutOfMemory("out of GPU memory in Whisper"), "oom"),
    (RuntimeError("CUDA error: out of memory"), "oom"),
    (RuntimeError(ILLEGAL), "fatal_cuda"),
    (RuntimeError(ASSERT), "fatal_cuda"),
    (RuntimeError("CUDA error: unspecified launch failure"), "fatal_cuda"),
    (RuntimeError("CUDA error: misaligned address\nCUDA kernel errors might be asynchronously reported"), "fatal_cuda"),
    (RuntimeError("CUDA driver error: unknown error"), "fatal_cuda"),
    (RuntimeError("CUDA error: no CUDA-capable device is detected"), "fatal_cuda"),
    (RuntimeError("No CUDA GPUs are available"), "fatal_cuda"),
    (RuntimeError("cuDNN error: CUDNN_STATUS_EXECUTION_FAILED"), "fatal_cuda"),
    (RuntimeError("CUDA error: CUBLAS_STATUS_EXECUTION_FAILED when calling `cublasSgemm( handle, opa, opb)`"),
     "fatal_cuda"),
    (RuntimeError("Expected all tensors to be on the same device, but found at least two devices, cuda:0 and cpu!"),
     "other"),
    (ValueError("expected mono audio (1-D), got shape (2, 16000)"), "other"),
    (FatalEngineError("cannot load Whisper weights: run `voiced models fetch`"), "other"),
])
def test_classify_real_messages(exc, kind):
    assert classify(exc) == kind


def test_classify_looks_through_engine_wrappers():
    assert classify(whisper_wrapped(ILLEGAL)) == "fatal_cuda"
    assert classify(whisper_wrapped(ASSERT)) == "fatal_cuda"
    try:
        try:
            raise oom()
        except RuntimeError as exc:
            raise OutOfMemory("Chatterbox ran out of memory on cuda") from exc
    except OutOfMemory as wrapped:
        assert classify(wrapped) == "oom"
    if hasattr(torch, "AcceleratorError"):      # what torch >= 2.8 raises for CUDA errors
        assert classify(torch.AcceleratorError(ILLEGAL)) == "fatal_cuda"


# ---------------------------------------------------------------- the GPU manager
@pytest.mark.parametrize("requested, free, total, expected", [
    (0.8, 20 * GiB, 24 * GiB, 0.8),                         # enough free: as configured
    (0.8, 10 * GiB, 24 * GiB, (10 * GiB - 256 * MiB) / (24 * GiB)),   # another program holds 14 GiB
    (0.5, 23 * GiB, 24 * GiB, 0.5),
    (1.0, 24 * GiB, 24 * GiB, (24 * GiB - 256 * MiB) / (24 * GiB)),
    (0.8, 100 * MiB, 8 * GiB, 0.0),                         # nothing left
    (0.8, 0, 0, 0.0),
])
def test_adapt_fraction(requested, free, total, expected):
    got = adapt_fraction(requested, free, total)
    assert got == pytest.approx(expected, abs=1e-4)
    assert got <= requested and got * total <= max(0, free)     # never more than asked or free


def test_manager_sets_the_adapted_limit_and_reports_vram():
    cuda = FakeCuda(free=10 * GiB, total=24 * GiB)
    gpu = GpuManager(Settings(gpu={"memory_fraction": 0.8}), cuda)
    assert gpu.start() and gpu.usable and gpu.preferred("auto") == "cuda"
    assert cuda.fraction_set == pytest.approx(0.4062, abs=1e-4) == gpu.fraction
    vram = gpu.vram()
    assert vram["name"] == "Simulated GPU" and vram["total_mb"] == 24 * 1024
    assert vram["used_mb"] == 14 * 1024 and vram["limit_mb"] == round(0.4062 * 24 * 1024)
    assert vram["allocated_mb"] == 3 * 1024 and vram["requested_fraction"] == 0.8


def test_manager_without_a_gpu_or_with_too_little_memory():
    gpu = GpuManager(Settings(), FakeCuda(available=False))
    assert not gpu.start() and gpu.preferred("auto") == "cpu" and gpu.vram() is None
    full = FakeCuda(free=200 * MiB)
    gpu = GpuManager(Settings(), full)
    assert not gpu.start() and gpu.preferred("auto") == "cuda"      # there, but unusable now
    assert "200 MiB" in gpu.detail and full.fraction_set is None


def test_gpu_settings_validated():
    with pytest.raises(Exception, match="memory_fraction"):
        Settings(gpu={"memory_fraction": 0})
    with pytest.raises(Exception, match="memory_fraction"):
        Settings(gpu={"memory_fraction": 1.5})
    with pytest.raises(Exception, match="reprobe_s"):
        Settings(gpu={"reprobe_s": 0})
    assert Settings().gpu.memory_fraction == 0.8 and Settings().gpu.reprobe_s == 60


# ---------------------------------------------------------------- out of memory
def test_oom_once_frees_the_cache_and_the_retry_answers(short_clip, cpu_whisper):
    sim = SimulatedGpuStt(cpu_whisper, [oom()])
    engine, gpu, _ = rig([sim])
    result = engine.transcribe(short_clip)
    assert words(result.text) == "and so my fellow americans"
    assert gpu.cuda.emptied == 1 and sim.calls == 2
    state = engine.state
    assert state["device"] == "cuda" and not state["degraded"]
    assert state["recoveries"] == 1 and state["ooms"] == 1 and state["dropped"] == 0


def test_oom_twice_drops_that_request_only():
    sim = SimulatedGpuStt(None, [oom(), OutOfMemory("out of GPU memory in Whisper")])
    engine, gpu, build = rig([sim])
    with pytest.raises(OutOfMemory, match="this request is dropped"):
        engine.transcribe(np.zeros(16_000, np.float32))
    assert engine.transcribe(np.zeros(16_000, np.float32)).text == "canned"    # the next one works
    assert engine.state["device"] == "cuda" and engine.state["dropped"] == 1 and build.devices == ["cuda"]
    assert gpu.cuda.emptied == 1                                  # once, before the only retry


def test_other_errors_end_the_request_and_change_nothing():
    sim = SimulatedGpuStt(None, [ValueError("expected mono audio")])
    engine, gpu, build = rig([sim])
    with pytest.raises(ValueError):
        engine.transcribe(np.zeros(16_000, np.float32))
    assert engine.state["device"] == "cuda" and engine.state["recoveries"] == 0 and build.devices == ["cuda"]
    assert gpu.cuda.emptied == 0 and gpu.fault is None


# ---------------------------------------------------------------- fatal CUDA errors
@pytest.mark.parametrize("fault, fresh", [(RuntimeError(ILLEGAL), True), (whisper_wrapped(ASSERT), False)],
                         ids=["illegal-memory-access-factory-build", "device-side-assert-via-whisper"])
def test_fatal_error_answers_on_cpu_and_stays_there(fault, fresh, cpu_whisper, stt_settings, short_clip,  # noqa: F811
                                                    caplog):
    from voiced.config import with_section
    from voiced.engines.factory import make_stt

    sim = SimulatedGpuStt(None, [fault])
    # fresh: the CPU Whisper is built by the project's factory at the moment of the fault,
    # as in the daemon, so switch_s is the real time to move; else the loaded one is reused.
    cpu_build = (lambda: make_stt(with_section(stt_settings, "stt", device="cpu"))) if fresh else None
    engine, gpu, build = rig([sim], cpu_whisper, cpu_build=cpu_build)
    caplog.set_level(logging.INFO, logger="voiced.recovery")
    started = time.monotonic()
    result = engine.transcribe(jfk_audio())                      # the same request, answered on CPU
    elapsed = time.monotonic() - started
    assert wer("And so my fellow Americans, ask not what your country can do for you, "
               "ask what you can do for your country.", result.text) < 0.1, result.text
    state = engine.state
    assert state["device"] == "cpu" and state["preferred"] == "cuda" and state["degraded"]
    assert ("illegal memory access" if "illegal" in str(fault) else "device-side assert") in state["reason"]
    assert state["recoveries"] == 1 and state["last_switch"] and state["switch_s"] is not None
    assert gpu.fault and not gpu.usable
    calls = sim.calls
    assert words(engine.transcribe(short_clip).text) == "and so my fellow americans"
    assert sim.calls == calls == 1, "the broken GPU engine was used again"
    assert build.devices == ["cuda", "cpu"]
    switches = [r for r in caplog.records if "moved to cpu" in r.getMessage()]
    assert len(switches) == 1 and switches[0].levelno == logging.ERROR
    print(f"\nSTT switch to CPU ({'factory build' if fresh else 'engine reused'}): {state['switch_s']:.2f} s; "
          f"the failed request answered on CPU after {elapsed:.2f} s")


def test_reprobe_returns_to_the_gpu_only_when_it_is_healthy(cpu_whisper, caplog):
    cuda = FakeCuda()
    first, second = SimulatedGpuStt(None, [RuntimeError(ASSERT)]), SimulatedGpuStt(None)
    engine, gpu, build = rig([first, second], cpu_whisper, cuda)
    caplog.set_level(logging.INFO, logger="voiced.recovery")
    engine.transcribe(np.zeros(8_000, np.float32))
    assert engine.state["device"] == "cpu"
    cuda.healthy = False
    for _ in range(3):
        assert engine.reprobe() is False
    assert engine.state["device"] == "cpu" and engine.state["degraded"] and build.devices == ["cuda", "cpu"]
    cuda.healthy = True
    assert engine.reprobe() is True
    state = engine.state
    assert state["device"] == "cuda" and not state["degraded"] and state["reason"] == ""
    assert gpu.usable and gpu.fault is None and build.devices == ["cuda", "cpu", "cuda"]
    assert engine.transcribe(np.zeros(16_000, np.float32)).text == "canned" and second.calls == 1
    assert engine.reprobe() is False                             # healthy: nothing to do
    returns = [r for r in caplog.records if "back on cuda" in r.getMessage()]
    assert len(returns) == 1


class FailsToLoad:
    """A GPU engine whose load raises `error` (the probe passed, the model did not fit or start)."""

    def __init__(self, error):
        self.error = error

    def load(self):
        raise self.error


def test_gpu_back_but_engine_fails_to_load_warns_once_per_reason_and_status_says_why(caplog):
    cuda = FakeCuda()
    refusals = [FailsToLoad(oom()), FailsToLoad(oom()), FailsToLoad(RuntimeError("CUDA error: out of memory"))]
    engine, gpu, build = rig([SimulatedGpuStt(None, [RuntimeError(ASSERT)]), *refusals, SimulatedGpuStt(None)],
                             SimulatedGpuStt(None), cuda)
    caplog.set_level(logging.DEBUG, logger="voiced.recovery")
    engine.transcribe(np.zeros(8_000, np.float32))                  # fatal on the GPU: now on the CPU
    assert engine.state["device"] == "cpu" and engine.state["reprobe_error"] is None

    assert engine.reprobe() is False and engine.reprobe() is False   # the probe passes, the load does not
    assert gpu.usable and cuda.probes == 3                            # at start, then each re-probe
    state = engine.state
    assert state["device"] == "cpu" and state["degraded"]
    assert state["reprobe_error"].startswith("OutOfMemoryError: CUDA out of memory")
    warned = [r for r in caplog.records if "failed to load on cuda" in r.getMessage()]
    assert len(warned) == 1 and warned[0].levelno == logging.WARNING  # once for the same reason
    said = warned[0].getMessage()
    assert said.startswith("stt: ") and "OutOfMemoryError: CUDA out of memory" in said and "staying on the CPU" in said

    assert engine.reprobe() is False                                 # another reason: said again
    assert engine.state["reprobe_error"] == "RuntimeError: CUDA error: out of memory"
    assert len([r for r in caplog.records if "failed to load on cuda" in r.getMessage()]) == 2

    assert engine.reprobe() is True                                  # it loads: back, nothing left to say
    assert engine.state["device"] == "cuda" and engine.state["reprobe_error"] is None
    assert build.devices == ["cuda", "cpu", "cuda", "cuda", "cuda", "cuda"]


def test_unusable_gpu_at_start_means_degraded_then_recovered():
    cuda = FakeCuda(healthy=False)
    sim = SimulatedGpuStt(None)
    engine, gpu, build = rig([sim], SimulatedGpuStt(None), cuda)
    assert engine.state["device"] == "cpu" and engine.state["preferred"] == "cuda" and engine.state["degraded"]
    assert "GPU probe failed" in engine.state["reason"] and build.devices == ["cpu"] and not gpu.usable
    cuda.healthy = True
    assert engine.reprobe() and engine.state["device"] == "cuda" and cuda.fraction_set == 0.8


def test_one_request_at_a_time_reaches_the_engine():
    sim = SimulatedGpuStt(None)
    engine, _, _ = rig([sim])
    errors = []

    def worker():
        try:
            for _ in range(10):
                engine.transcribe(np.zeros(1_600, np.float32))
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)
    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and sim.calls == 40


# ---------------------------------------------------------------- TTS
REPLY = ("The kitchen lights are on. The front door is locked. "
         "Tomorrow will be sunny with a light breeze. Have a good evening.")


@pytest.fixture(scope="module")
def piper():
    pytest.importorskip("piper", reason="piper-tts is not installed (pip install piper-tts)")
    from voiced.engines.tts_piper import PiperEngine

    engine = PiperEngine(TtsSettings(engine="piper"))
    engine.load()
    yield engine
    engine.close()


class SimulatedGpuTts:
    """Chatterbox "on the GPU": speaks through a real engine, but raises `fault` (as torch
    would, mid-generation) after `after` sentences. Records what it said."""

    def __init__(self, real, fault=None, after=0):
        self.real, self.fault, self.after = real, fault, after
        self.said: list[str] = []
        self.sample_rate = real.sample_rate

    def load(self):
        return EngineInfo("chatterbox", "cuda", "simulated")

    def warmup(self):
        pass

    def synthesize(self, text, style=PLAIN):
        for i, chunk in enumerate(self.real.synthesize(text, style)):
            if self.fault is not None and i == self.after:
                fault, self.fault = self.fault, None
                raise fault
            self.said.append(chunk.text)
            yield chunk


def test_tts_fatal_mid_reply_the_cpu_engine_speaks_the_rest_once(piper, cpu_whisper):
    from voiced.engines.factory import make_tts
    from voiced.text import speakable, split_sentences

    sim = SimulatedGpuTts(piper, RuntimeError(ASSERT), after=2)
    gpu = GpuManager(Settings(), FakeCuda())
    # Chatterbox was asked for; the CPU fallback goes through the real factory (-> Piper).
    settings = Settings(tts={"engine": "chatterbox"})
    engine = RecoveringEngine("tts", Builds([sim], cpu_build=lambda: make_tts(tts_settings_for(settings, "cpu", True))),
                              gpu)
    engine.load()
    started = time.monotonic()
    chunks = list(engine.synthesize(REPLY))
    sentences = split_sentences(speakable(REPLY))
    assert [c.text for c in chunks] == sentences                # every sentence once, in order
    assert sim.said == sentences[:2]
    state = engine.state
    assert state["device"] == "cpu" and state["engine"] == "piper" and "device-side assert" in state["reason"]
    print(f"\nTTS switch to CPU (Piper built by the factory): {state['switch_s']:.2f} s; "
          f"whole reply {time.monotonic() - started:.2f} s")
    rest = np.concatenate([c.audio for c in chunks[2:]])
    from scipy.signal import resample_poly
    heard = cpu_whisper.transcribe(resample_poly(rest, 16_000, chunks[2].sample_rate).astype(np.float32)).text
    assert wer(" ".join(sentences[2:]), heard) < 0.25, heard
    engine.close()


def test_tts_oom_mid_reply_retries_the_rest_on_the_same_engine(piper):
    sim = SimulatedGpuTts(piper, oom(), after=1)
    cuda = FakeCuda()
    engine = RecoveringEngine("tts", Builds([sim], piper), GpuManager(Settings(), cuda))
    engine.load()
    texts = [c.text for c in engine.synthesize(REPLY)]
    assert len(texts) == 4 and len(set(texts)) == 4 and texts == sim.said
    assert cuda.emptied == 1 and engine.state["device"] == "cuda" and engine.state["recoveries"] == 1


def test_fault_in_stt_moves_tts_off_the_gpu_too(piper):
    gpu = GpuManager(Settings(), FakeCuda())
    stt = RecoveringEngine("stt", Builds([SimulatedGpuStt(None, [RuntimeError(ILLEGAL)])], SimulatedGpuStt(None)), gpu)
    tts_gpu = SimulatedGpuTts(piper)
    tts = RecoveringEngine("tts", Builds([tts_gpu], piper, EngineInfo("piper", "cpu", "real")), gpu)
    stt.load(), tts.load()
    stt.transcribe(np.zeros(8_000, np.float32))
    texts = [c.text for c in tts.synthesize("Hello there.")]
    assert texts == ["Hello there."] and tts_gpu.said == []     # the broken GPU engine was not touched
    assert tts.state["device"] == "cpu" and "GPU fault" in tts.state["reason"]


def test_remaining_text():
    text = "**Hello** there. The door is locked.\n- buy milk\n- call Anna"
    assert remaining_text(text, []) == text
    assert remaining_text(text, ["Hello there."]) == "The door is locked.\nbuy milk.\ncall Anna."
    assert remaining_text(text, ["Hello there.", "The door is locked.", "Buy milk."]) == "call Anna."
    assert remaining_text(text, ["Hello there. The door is locked. buy milk. call Anna."]) == ""


def test_tts_cpu_fallback_settings_follow_the_factory():
    forced = Settings(tts={"engine": "chatterbox"})
    assert tts_settings_for(forced, "cpu", fallback=True).tts.engine == "auto"     # -> Piper on CPU
    assert tts_settings_for(forced, "cpu", fallback=False).tts.engine == "chatterbox"   # user's choice
    assert tts_settings_for(Settings(tts={"engine": "chatterbox", "chatterbox_on_cpu": True}), "cpu",
                            True).tts.chatterbox_on_cpu
    assert tts_settings_for(forced, "cuda", fallback=False).tts.device == "cuda"


def test_recovering_tts_builds_through_the_real_factory():
    pytest.importorskip("piper")
    gpu = GpuManager(Settings(), FakeCuda(available=False))
    tts, info = recovering_tts(Settings(tts={"engine": "piper"}), gpu)
    try:
        assert info.name == "piper" and tts.state["device"] == "cpu" and not tts.state["degraded"]
        assert [c.text for c in tts.synthesize("One. Two.")] == ["One.", "Two."]
    finally:
        tts.close()


class ToneTts:
    """A cheap TTS (one short tone per sentence) that records whether it was closed."""

    sample_rate = 16_000

    def __init__(self, device="cuda", fault=None, after=0):
        self.device, self.fault, self.after, self.closed, self.said = device, fault, after, False, []

    def load(self):
        return EngineInfo("tone", self.device, "test")

    def synthesize(self, text, style=PLAIN):
        from voiced.engines.base import SpeechChunk
        from voiced.text import split_sentences

        for i, sentence in enumerate(split_sentences(text)):
            if self.fault is not None and i == self.after:
                raise self.fault
            self.said.append(sentence)
            yield SpeechChunk(np.full(160, 0.1, np.float32), self.sample_rate, sentence)

    def close(self):
        self.closed = True


def test_engine_in_use_is_closed_only_after_the_reply_is_abandoned():
    cuda = FakeCuda(healthy=True)
    cpu_engine = ToneTts("cpu")
    gpu = GpuManager(Settings(), cuda)
    engine = RecoveringEngine("tts", Builds([ToneTts(fault=RuntimeError(ILLEGAL)), ToneTts()], cpu_engine,
                                            EngineInfo("tone", "cpu", "test")), gpu)
    engine.load()
    reply = engine.synthesize("One. Two. Three.")
    assert next(reply).text == "One." and engine.state["device"] == "cpu"     # fault at once: on CPU
    assert engine.reprobe() and engine.state["device"] == "cuda"            # GPU back mid-reply
    assert not cpu_engine.closed                                            # still speaking this reply
    assert next(reply).text == "Two."
    reply.close()                                                           # barge-in
    assert cpu_engine.closed
    assert [c.text for c in engine.synthesize("Four.")] == ["Four."] and engine.state["device"] == "cuda"
