"""voiced as a Home Assistant voice satellite over the ESPHome native API.

Home Assistant's ESPHome integration connects here as it would to an ESPHome voice device
(linux-voice-assistant works the same way). This module runs the server on its own asyncio
thread and translates: what Home Assistant sends (pipeline events, announcements, timers,
wake word choice, media player commands) is posted to the turn owner as messages; what the
owner decides (start a run, stream the request audio, the reply was played) is sent back.
It never changes the turn state itself.
"""
from __future__ import annotations

import asyncio
import logging
import threading
import uuid

import numpy as np

from ..core import messages as m

log = logging.getLogger("voiced.homeassistant")
MEDIA_PLAYER_KEY = 1
ESPHOME_VERSION = "2025.12.0"   # the ESPHome release whose API this speaks (Home Assistant checks it)


def _mac() -> str:
    node = uuid.getnode()
    return ":".join(f"{node >> shift & 0xFF:02X}" for shift in range(40, -8, -8))


class Satellite:
    def __init__(self, daemon):
        from aioesphomeapi import api_pb2
        from aioesphomeapi.model import VoiceAssistantFeature as F

        self.pb = api_pb2
        self.d = daemon
        self.settings = daemon.settings.homeassistant
        self.mac = _mac()
        self.features = F.VOICE_ASSISTANT | F.API_AUDIO | F.SPEAKER | F.TIMERS | F.ANNOUNCE | F.START_CONVERSATION
        self.loop: asyncio.AbstractEventLoop | None = None
        self.loop_thread: int | None = None
        self._thread: threading.Thread | None = None
        self._server = None
        self._zeroconf = None
        self._lock = threading.Lock()
        self.conn = None              # the connection subscribed to voice assistant runs
        self.connections: set = set()
        self.streaming = False
        self.volume, self.muted = 1.0, False
        self.timers: dict[str, dict] = {}
        self.runs = 0
        self.last_error = ""

    # -- life cycle ---------------------------------------------------------------------------
    def start(self) -> None:
        ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, args=(ready,), name="homeassistant", daemon=True)
        self._thread.start()
        ready.wait(10)

    def _serve(self, ready: threading.Event) -> None:
        from .esphome_api import ApiConnection

        self.loop = asyncio.new_event_loop()
        self.loop_thread = threading.get_ident()
        asyncio.set_event_loop(self.loop)
        s = self.settings
        try:
            self._server = self.loop.run_until_complete(
                self.loop.create_server(lambda: ApiConnection(self, self.loop), s.host, s.port, reuse_address=True))
        except OSError as exc:
            self.last_error = f"cannot listen on {s.host}:{s.port}: {exc.strerror or exc}"
            log.error("Home Assistant satellite: %s; is another ESPHome device or voiced using the port? "
                      "Set [homeassistant] port", self.last_error)
            ready.set()
            return
        local_only = s.host in ("127.0.0.1", "localhost", "::1")
        log.info("Home Assistant satellite on %s:%d (%s)%s", s.host, s.port,
                 "encrypted" if s.encryption_key else "plaintext",
                 "; only a Home Assistant on this machine can reach it: set [homeassistant] host = \"0.0.0.0\""
                 if local_only else "")
        if s.mdns and not local_only:
            self._advertise()
        ready.set()
        self.loop.run_forever()

    def stop(self) -> None:
        if self.loop is None:
            return
        if self._zeroconf is not None:
            try:
                self._zeroconf.close()
            except Exception:  # noqa: BLE001 - shutting down
                pass

        def shutdown():
            for conn in list(self.connections):
                conn._close_now()
            if self._server is not None:
                self._server.close()
            self.loop.stop()
        self.loop.call_soon_threadsafe(shutdown)
        if self._thread is not None:
            self._thread.join(5)

    def _addresses(self) -> list[str]:
        """Where Home Assistant can reach this machine: the bound address, or every IPv4 one."""
        if self.settings.host not in ("0.0.0.0", "::", ""):
            return [self.settings.host]
        import ifaddr   # zeroconf's own dependency

        return [ip.ip for adapter in ifaddr.get_adapters() for ip in adapter.ips
                if isinstance(ip.ip, str) and not ip.ip.startswith("127.")]

    def _advertise(self) -> None:
        try:
            from zeroconf import ServiceInfo, Zeroconf

            s = self.settings
            info = ServiceInfo("_esphomelib._tcp.local.", f"{s.name}._esphomelib._tcp.local.", port=s.port,
                               properties={"version": ESPHOME_VERSION, "mac": self.mac.replace(":", "").lower(),
                                           "platform": "host", "board": "voiced", "network": "ethernet",
                                           "friendly_name": s.friendly_name, "api_encryption":
                                           "Noise_NNpsk0_25519_ChaChaPoly_SHA256" if s.encryption_key else ""},
                               server=f"{s.name}.local.", parsed_addresses=self._addresses())
            self._zeroconf = Zeroconf()
            self._zeroconf.register_service(info)
        except Exception as exc:  # noqa: BLE001 - discovery is a convenience: add the device by address
            log.warning("Home Assistant satellite: not announced on the network (%s); add it in Home "
                        "Assistant by this machine's address", exc)

    # -- what the owner asks (owner thread) ---------------------------------------------------
    @property
    def available(self) -> bool:
        """Home Assistant is connected and takes voice runs: the wake word goes to it."""
        return self.conn is not None

    def start_run(self, wake_word: str | None) -> bool:
        conn = self.conn
        if conn is None:
            return False
        self.runs += 1
        self.streaming = True
        conn.send(self.pb.VoiceAssistantRequest(start=True, wake_word_phrase=wake_word or ""))
        return True

    def audio(self, pcm: np.ndarray) -> None:
        conn = self.conn
        if conn is not None and self.streaming:
            conn.send(self.pb.VoiceAssistantAudio(data=np.asarray(pcm, np.int16).tobytes()))

    def stop_audio(self, tell: bool = False) -> None:
        """Stop streaming; `tell`: this side ended the request (length cap, key released)."""
        was, self.streaming = self.streaming, False
        if was and tell and self.conn is not None:
            self.conn.send(self.pb.VoiceAssistantRequest(start=False))

    def played(self, success: bool = True) -> None:
        """A reply or announcement finished playing (Home Assistant waits for this)."""
        if self.conn is not None:
            self.conn.send(self.pb.VoiceAssistantAnnounceFinished(success=success))

    def media_state(self, playing: bool) -> None:
        from aioesphomeapi.model import MediaPlayerState

        state = MediaPlayerState.ANNOUNCING if playing else MediaPlayerState.IDLE
        msg = self.pb.MediaPlayerStateResponse(key=MEDIA_PLAYER_KEY, state=state, volume=self.volume, muted=self.muted)
        for conn in list(self.connections):
            conn.send(msg)

    def status(self) -> dict:
        conn = self.conn
        return {"enabled": True, "listening": f"{self.settings.host}:{self.settings.port}",
                "encrypted": bool(self.settings.encryption_key), "connected": bool(self.connections),
                "voice": conn is not None, "peer": conn.peer if conn else None,
                "client": conn.client_info if conn else None, "runs": self.runs,
                "timers": list(self.timers.values()), "error": self.last_error}

    # -- what Home Assistant sends (the satellite's thread) -------------------------------------
    def connected(self, conn) -> None:
        self.connections.add(conn)
        log.info("Home Assistant connected from %s (%s)", conn.peer, conn.client_info or "unknown client")

    def disconnected(self, conn) -> None:
        self.connections.discard(conn)
        if self.conn is conn:
            self.conn = None
            self.streaming = False
            log.warning("Home Assistant disconnected (%s): voiced answers by itself until it is back", conn.peer)
            self.d.owner.post(m.HaEvent(-1, {"message": "Home Assistant disconnected"}))

    def handle(self, conn, msg) -> list:
        pb = self.pb
        if isinstance(msg, pb.DeviceInfoRequest):
            return [self._device_info()]
        if isinstance(msg, pb.ListEntitiesRequest):
            return [pb.ListEntitiesMediaPlayerResponse(object_id=f"{self.settings.name}_media_player",
                                                       key=MEDIA_PLAYER_KEY, name="Media Player",
                                                       supports_pause=False),
                    pb.ListEntitiesDoneResponse()]
        if isinstance(msg, pb.SubscribeStatesRequest):
            return [pb.MediaPlayerStateResponse(key=MEDIA_PLAYER_KEY, state=1, volume=self.volume, muted=self.muted)]
        if isinstance(msg, pb.SubscribeVoiceAssistantRequest):
            self._subscribe(conn, msg.subscribe)
            return []
        if isinstance(msg, pb.VoiceAssistantConfigurationRequest):
            return [self._wake_words()]
        if isinstance(msg, pb.VoiceAssistantSetConfiguration):
            self._set_wake_words(list(msg.active_wake_words))
            return []
        if isinstance(msg, pb.VoiceAssistantResponse):
            if msg.error:
                self.d.owner.post(m.HaEvent(0, {"code": "start-failed", "message": "Home Assistant refused the run"}))
            return []
        if isinstance(msg, pb.VoiceAssistantEventResponse):
            self.d.owner.post(m.HaEvent(msg.event_type, {d.name: d.value for d in msg.data}))
            return []
        if isinstance(msg, pb.VoiceAssistantAnnounceRequest):
            urls = tuple(u for u in (msg.preannounce_media_id, msg.media_id) if u)
            self.d.owner.post(m.HaAnnounce(urls, msg.text, msg.start_conversation))
            return []
        if isinstance(msg, pb.VoiceAssistantTimerEventResponse):
            self._timer(msg)
            return []
        if isinstance(msg, pb.MediaPlayerCommandRequest):
            return self._media_command(msg)
        return []   # logs, Home Assistant states and services: nothing to say

    def _device_info(self):
        from .. import __version__

        s = self.settings
        return self.pb.DeviceInfoResponse(
            uses_password=False, name=s.name, friendly_name=s.friendly_name, mac_address=self.mac,
            esphome_version=ESPHOME_VERSION, model="voiced", manufacturer="voiced",
            project_name="voiced.voiced", project_version=__version__,
            voice_assistant_feature_flags=int(self.features), api_encryption_supported=bool(s.encryption_key))

    def _subscribe(self, conn, on: bool) -> None:
        if on:
            self.conn = conn
            log.info("Home Assistant takes the voice pipeline (%s): the wake word now starts an Assist run",
                     conn.peer)
        elif self.conn is conn:
            self.conn = None
            log.info("Home Assistant unsubscribed from voice runs: voiced answers by itself")

    def _wake_words(self):
        from ..models.openwakeword_assets import assets_dir, available_wake_models

        names = sorted(set(available_wake_models(assets_dir(self.d.settings))) | set(self.d.settings.wake.models))
        words = [self.pb.VoiceAssistantWakeWord(id=n, wake_word=n.replace("_", " ").title(), trained_languages=["en"])
                 for n in names]
        return self.pb.VoiceAssistantConfigurationResponse(
            available_wake_words=words, active_wake_words=list(self.d.settings.wake.models),
            max_active_wake_words=max(1, len(names)))

    def _set_wake_words(self, ids: list[str]) -> None:
        if not ids:
            log.info("Home Assistant asked for no wake word: ignored (voiced keeps %s)",
                     ", ".join(self.d.settings.wake.models))
            return
        log.info("Home Assistant chose the wake word(s): %s", ", ".join(ids))
        self.d.change_wake_words(tuple(ids))

    def _timer(self, msg) -> None:
        from aioesphomeapi.model import VoiceAssistantTimerEventType as T

        event = T(msg.event_type)
        if event in (T.VOICE_ASSISTANT_TIMER_CANCELLED, T.VOICE_ASSISTANT_TIMER_FINISHED):
            self.timers.pop(msg.timer_id, None)
        else:
            self.timers[msg.timer_id] = {"id": msg.timer_id, "name": msg.name, "total_s": msg.total_seconds,
                                         "left_s": msg.seconds_left, "active": msg.is_active}
        log.info("Home Assistant timer %s%s: %s (%d of %d s left)", msg.timer_id,
                 f" ({msg.name})" if msg.name else "", event.name.rsplit("_", 1)[-1].lower(),
                 msg.seconds_left, msg.total_seconds)
        self.d.owner.post(m.HaTimer(int(msg.event_type), msg.timer_id, msg.name))

    def _media_command(self, msg) -> list:
        from aioesphomeapi.model import MediaPlayerCommand as C

        if msg.has_volume:
            self.volume = min(1.0, max(0.0, msg.volume))
        if msg.has_command:
            command = C(msg.command)
            if command in (C.MUTE, C.UNMUTE):
                self.muted = command == C.MUTE
            elif command == C.VOLUME_UP:
                self.volume = min(1.0, self.volume + 0.1)
            elif command == C.VOLUME_DOWN:
                self.volume = max(0.0, self.volume - 0.1)
            elif command in (C.STOP, C.PAUSE):
                self.d.owner.post(m.CancelTurn("stopped by Home Assistant"))
        self.d.playback.volume = 0.0 if self.muted else self.volume
        if msg.has_media_url:
            self.d.owner.post(m.HaAnnounce((msg.media_url,), "", False, reply=False))
        return [self.pb.MediaPlayerStateResponse(key=MEDIA_PLAYER_KEY, state=1, volume=self.volume, muted=self.muted)]
