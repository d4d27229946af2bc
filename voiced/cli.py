"""The `voiced` command: run, doctor, models, transcribe, say."""
from __future__ import annotations

import argparse
import logging
import os
import signal
import sys

# OpenMP threads that spin while waiting made torch 10-70x slower whenever the audio
# threads or another process held a core; sleeping waiters cost little. Set before torch loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from .config import EX_CONFIG, ConfigError, Settings, load_settings
from .engines.base import EngineError, FatalEngineError, TransientEngineError

EX_UNAVAILABLE = 69  # sysexits.h: a needed service (model weights, engine) is unavailable
from .logs import setup_logging

log = logging.getLogger("voiced")


def _settings(args) -> Settings:
    settings, path = load_settings(args.config)
    setup_logging(args.log_level or settings.log.level)
    log.debug("config from %s", path)
    args.config_path = path
    return settings


def install_signal_handlers(daemon) -> None:
    """The handlers only post to the owner's queue (its put() is reentrant): they run on the
    owner's own thread, between any two bytecodes, while it may hold any lock."""
    signal.signal(signal.SIGTERM, lambda signum, _f: daemon.stop(signal.Signals(signum).name))
    signal.signal(signal.SIGINT, lambda signum, _f: daemon.stop(signal.Signals(signum).name))
    signal.signal(signal.SIGHUP, lambda _s, _f: daemon.request_reload())


def _stop_before_start(_signum, _frame):
    """SIGTERM before the daemon exists (while Python imports it): nothing to clean up."""
    raise SystemExit(0)


def cmd_run(args) -> int:
    signal.signal(signal.SIGTERM, _stop_before_start)
    signal.signal(signal.SIGINT, _stop_before_start)
    from .app import Daemon

    settings = _settings(args)
    log.info("voiced starting with config %s", args.config_path)
    # Re-read the same file on SIGHUP; a bad edit keeps the running config instead of stopping.
    daemon = Daemon(settings, reload_source=lambda: load_settings(args.config)[0])

    install_signal_handlers(daemon)
    web = None
    if settings.web.enabled:   # before the models load, so the page can show "starting"
        from .web import start_web_server

        try:
            web = start_web_server(daemon, settings.web)
        except OSError as exc:
            log.error("%s; running without the status page", exc)
    try:
        daemon.run()
    finally:
        if web:
            web.stop(timeout=1.0)
        daemon.shutdown()
    log.info("voiced stopped")
    if daemon.loading:
        # Stopped while the models were still loading: native code (onnxruntime, CTranslate2,
        # torch) is mid-load on the loader thread, and interpreter teardown under it aborts.
        logging.shutdown()
        sys.stdout.flush()
        os._exit(0)
    return 0


def cmd_doctor(args) -> int:
    from .doctor import run_doctor

    if args.wake or args.file:
        from .wake_tuning import run_wake_scores

        return run_wake_scores(_settings(args), args.file or [], args.seconds)
    return run_doctor(_settings(args), args.config_path, listen_s=args.listen)


def cmd_models(args) -> int:
    from .models.registry import fetch_all, print_table, status_all
    from .config import models_dir

    settings = _settings(args)
    if args.action == "where":
        print(models_dir(settings))
        return 0
    rows = fetch_all(settings) if args.action == "fetch" else status_all(settings)
    print_table(rows, models_dir(settings))
    optional = {"smart-turn"} if settings.vad.end_of_turn == "silence" else set()
    return 0 if all(r.ready or r.name.startswith("tts-chatterbox") or r.name in optional for r in rows) else 1


def cmd_transcribe(args) -> int:
    from .audio.decode import UnreadableAudio, decode_audio
    from .engines.factory import make_stt

    settings = _settings(args)
    stt, info = make_stt(settings)
    status = 0
    for name in args.files:
        prefix = f"{name}: " if len(args.files) > 1 else ""
        try:
            audio = decode_audio(name)
        except UnreadableAudio as exc:
            print(f"voiced: {name}: {exc}", file=sys.stderr)
            status = 65  # EX_DATAERR
            continue
        result = stt.transcribe(audio)
        if not result.text:
            print(f"voiced: {name}: no speech ({result.rejected})", file=sys.stderr)
            status = status or 1
            continue
        print(prefix + result.text, flush=True)
        log.info("%.1f s of audio in %.2f s with %s (%s)", result.audio_s, result.elapsed_s, info.model, info.device)
    return status


def cmd_say(args) -> int:
    import numpy as np

    from .audio.decode import write_wav
    from .audio.dsp import resample
    from .engines.factory import make_tts

    from .voices import VoiceError, open_store

    settings = _settings(args)
    try:
        style = open_store(settings).style(args.voice, speed=args.speed, pitch=args.pitch,
                                           exaggeration=args.exaggeration)
    except VoiceError as exc:
        print(f"voiced: --{exc.field or 'voice'}: {exc}", file=sys.stderr)
        return 2
    tts, info = make_tts(settings)
    log.info("speaking with %s on %s (%s)%s", info.name, info.device, info.model,
             f", voice {style.voice}" if style.voice else "")
    if args.out:
        chunks = [resample(c.audio, c.sample_rate, settings.audio.output_rate)
                  for c in tts.synthesize(args.text, style)]
        write_wav(args.out, np.concatenate(chunks) if chunks else np.zeros(0, np.float32), settings.audio.output_rate)
        print(args.out)
        return 0
    from .audio.playback import Playback

    playback = Playback(settings.audio)
    playback.play(tts.synthesize(args.text, style))
    return 0 if playback.ok else 1


def cmd_voices(args) -> int:
    from .config import voices_dir
    from .voices import VoiceError, open_store

    settings = _settings(args)
    store = open_store(settings)
    try:
        if args.action == "list":
            default = store.default_name()
            voices = store.list()
            for v in voices:
                controls = ", ".join(f"{k} {getattr(v, k):g}" for k in ("speed", "pitch", "exaggeration")
                                     if getattr(v, k) is not None)
                print(f"{'*' if v.name == default else ' '} {v.name:<20} {v.seconds:5.1f} s  {controls}")
            if not voices:
                print(f"no voices in {voices_dir(settings)} (add one: voiced voices add NAME FILE)")
            return 0
        if not args.name:
            print(f"voiced: voices {args.action} needs a NAME", file=sys.stderr)
            return 2
        if args.action == "add":
            if not args.file:
                print("voiced: voices add needs a FILE (a 3-30 s recording of one speaker)", file=sys.stderr)
                return 2
            try:
                with open(args.file, "rb") as fh:
                    data = fh.read(settings.web.max_upload_bytes + 1)
                if len(data) > settings.web.max_upload_bytes:
                    print(f"voiced: {args.file} is over {settings.web.max_upload_bytes} bytes "
                          "([web] max_upload_bytes); a reference clip needs 3-30 s", file=sys.stderr)
                    return 1
            except OSError as exc:
                print(f"voiced: {args.file}: {exc.strerror}", file=sys.stderr)
                return 66   # EX_NOINPUT
            voice = store.add(args.name, data, speed=args.speed, pitch=args.pitch,
                              exaggeration=args.exaggeration, replace=args.replace)
            print(f"added {voice.name} ({voice.seconds:.1f} s) in {store.folder(voice.name)}")
        elif args.action == "remove":
            store.remove(args.name)
            print(f"removed {args.name}")
        else:
            store.set_default(None if args.name == "none" else args.name)
            print(f"default voice: {args.name}")
    except VoiceError as exc:
        print(f"voiced: {exc}", file=sys.stderr)
        return 1
    return 0


def cmd_status(args) -> int:
    from .web.client import base_url, print_status

    s = _settings(args)
    return print_status(args.url or base_url(s.web), s.web.token)


def cmd_trigger(args) -> int:
    from .web.client import base_url, trigger

    s = _settings(args)
    return trigger(args.url or base_url(s.web), s.web.token)


def cmd_bench(args) -> int:
    from .bench.run import main_from_args

    return main_from_args(_settings(args), args)


def cmd_config(args) -> int:
    from .config_show import check, show

    if args.action == "check":
        print(check(args.file))
    else:
        sys.stdout.write(show(args.config, as_json=args.json))
    return 0


def cmd_completion(args) -> int:
    from .shell import completion

    sys.stdout.write(completion(args.shell, build_parser()))
    return 0


def cmd_man(args) -> int:
    from .manpage import render

    sys.stdout.write(render(build_parser()))
    return 0


def _style_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--speed", type=float, metavar="X", help="speaking rate 0.5-2.0, pitch kept")
    p.add_argument("--pitch", type=float, metavar="ST", help="pitch in semitones -6..+6, tempo kept")
    p.add_argument("--exaggeration", type=float, metavar="X", help="Chatterbox's emotion intensity 0-2")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="voiced", description="A headless, always-on voice daemon.")
    p.add_argument("--config", help="config file (default: $VOICED_CONFIG, /etc/voiced/voiced.toml, "
                                    "~/.config/voiced/voiced.toml, then the shipped default)")
    p.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="override [log] level")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sub.add_parser("run", help="run the daemon in the foreground",
                   description="Listen for the wake word and answer, until SIGTERM/SIGINT.").set_defaults(fn=cmd_run)

    d = sub.add_parser("doctor", help="check audio devices, models, GPU and config",
                       description="Print a table of checks; exit 1 if the daemon could not work.")
    d.add_argument("--listen", type=float, default=1.0, metavar="S", help="seconds of microphone to sample (0: skip)")
    d.add_argument("--wake", action="store_true",
                   help="print live wake word scores from the microphone, to tune [wake] threshold")
    d.add_argument("--seconds", type=float, default=60.0, metavar="S", help="with --wake: how long to listen")
    d.add_argument("--file", action="append", metavar="AUDIO",
                   help="with --wake: score a recording instead of the microphone (repeatable)")
    d.set_defaults(fn=cmd_doctor)

    m = sub.add_parser("models", help="list, fetch, or locate model weights",
                       description="list: what each model is and where it comes from; fetch: download from "
                                   "the hub, or prepare the offline sources; where: the models folder.")
    m.add_argument("action", nargs="?", choices=["list", "fetch", "where"], default="list")
    m.set_defaults(fn=cmd_models)

    t = sub.add_parser("transcribe", help="transcribe audio files (wav, flac, ogg, mp3, webm...)",
                       description="Print the transcript of each FILE; exit 1 if one holds no speech, "
                                   "65 if one cannot be decoded.")
    t.add_argument("files", nargs="+", metavar="FILE")
    t.set_defaults(fn=cmd_transcribe)

    s = sub.add_parser("say", help="speak TEXT, or write it to a WAV file",
                       description="Synthesise TEXT with the configured TTS engine.")
    s.add_argument("text")
    s.add_argument("--out", metavar="FILE", help="write a 16-bit mono WAV at [audio] output_rate instead of playing")
    _style_args(s)
    s.add_argument("--voice", metavar="NAME", help="a stored voice (voiced voices list); default: the default voice")
    s.set_defaults(fn=cmd_say)

    v = sub.add_parser("voices", help="list, add, remove or choose the default voice",
                       description="Voices are a reference clip (cloned by Chatterbox) plus default speed, "
                                   "pitch and exaggeration, kept in [voices] dir. `default none` goes back to "
                                   "the configured [tts] voice.")
    v.add_argument("action", choices=["list", "add", "remove", "default"])
    v.add_argument("name", nargs="?", metavar="NAME")
    v.add_argument("file", nargs="?", metavar="FILE", help="for add: 3-30 s of one speaker (wav, flac, ogg, mp3...)")
    v.add_argument("--replace", action="store_true", help="add: replace a voice of that name")
    _style_args(v)
    v.set_defaults(fn=cmd_voices)

    st = sub.add_parser("status", help="print the running daemon's status",
                        description="State, devices, engines, GPU, latency and last turns (GET /api/status).")
    st.add_argument("--url", help="daemon URL (default: from [web] host/port)")
    st.set_defaults(fn=cmd_status)
    tr = sub.add_parser("trigger", help="start a listening turn now, as if the wake word were heard",
                        description="POST /api/trigger; exit 1 if the daemon is busy or not running.")
    tr.add_argument("--url", help="daemon URL (default: from [web] host/port)")
    tr.set_defaults(fn=cmd_trigger)

    bn = sub.add_parser("bench", help="measure latency, CPU and memory with the real models (table + JSON)",
                        description="Wake word, VAD, STT, TTS and voice-to-voice (the real daemon on a private "
                                    "PulseAudio server): median and p95 after warm-up, beside the naive path of "
                                    "the product spec. See benchmarks/README.md.")
    bn.add_argument("--quick", action="store_true", help="fewer repeats and lengths (under ~3 minutes on 2 cores)")
    bn.add_argument("--parts", default="wake,vad,stt,tts,e2e",
                    help="comma-separated subset of wake,vad,stt,tts,e2e (default: all)")
    bn.add_argument("--out", metavar="FILE", help="JSON output (default: bench-results/bench-<timestamp>.json)")
    bn.add_argument("--chatterbox-random", metavar="DIR",
                    help="also time Chatterbox on the random-weight test checkpoint in DIR (built there if "
                         "missing); reported as RANDOM WEIGHTS: the code path's cost, not real speech")
    bn.set_defaults(fn=cmd_bench)

    c = sub.add_parser("config", help="show the effective settings, or check a config file",
                       description="show: every setting with its value and where it came from (default, "
                                   "file, environment variable); check FILE: exit 78 naming the bad key, "
                                   "else print ok.")
    csub = c.add_subparsers(dest="action", required=True, metavar="ACTION")
    cs = csub.add_parser("show", help="the effective settings and where each came from",
                         description="Print every setting as TOML with a comment saying where its value came "
                                     "from; secrets are masked.")
    cs.add_argument("--json", action="store_true", help="JSON for programs instead of TOML")
    cc = csub.add_parser("check", help="validate a config file (and the VOICED_* environment)",
                         description="Load FILE as voiced run would; exit 78 with the bad key named, else "
                                     "print ok.")
    cc.add_argument("file", metavar="FILE")
    c.set_defaults(fn=cmd_config)

    co = sub.add_parser("completion", help="print a shell completion script",
                        description="Print the completion script for bash, zsh or fish, generated from this "
                                    "command line (scripts/install-service.sh installs them).")
    co.add_argument("shell", choices=["bash", "zsh", "fish"])
    co.set_defaults(fn=cmd_completion)
    sub.add_parser("man", help="print the manual page (roff)",
                   description="Print voiced(1) in roff: man -l <(voiced man).").set_defaults(fn=cmd_man)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.fn(args)
    except ConfigError as exc:
        print(f"voiced: {exc}", file=sys.stderr)
        return EX_CONFIG
    except FatalEngineError as exc:  # weights missing, engine cannot run: a restart would not help
        print(f"voiced: cannot start: {exc}", file=sys.stderr)
        return EX_UNAVAILABLE
    except TransientEngineError as exc:   # e.g. a remote engine down and [wyoming] fallback_local = false
        print(f"voiced: {args.command}: {exc}", file=sys.stderr)
        return EX_UNAVAILABLE
    except EngineError as exc:            # the engine refused this request (e.g. a remote's error answer)
        print(f"voiced: {args.command}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
