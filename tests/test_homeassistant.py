"""voiced as a Home Assistant voice satellite, checked with aioesphomeapi: the client library
Home Assistant's ESPHome integration itself uses. Here the daemon is the shared in-process one
(real models, no audio devices): the protocol, encryption, entities, wake word choice and bad
peers. tests/test_e2e_homeassistant.py runs the spoken turns on the virtual devices."""
from __future__ import annotations

import asyncio
import base64
import logging
import os
import socket
import time

import pytest

aioesphomeapi = pytest.importorskip("aioesphomeapi", reason="aioesphomeapi is installed by scripts/setup.sh --test")

from aioesphomeapi import APIClient  # noqa: E402
from aioesphomeapi.model import VoiceAssistantFeature as F  # noqa: E402

from tests.fixtures_web import free_port  # noqa: E402
from voiced.config import HomeAssistantSettings  # noqa: E402

KEY = base64.b64encode(bytes(range(32))).decode()


@pytest.fixture(scope="module")
def satellite(web_daemon):
    from voiced.homeassistant.satellite import Satellite

    sat = Satellite(web_daemon)
    sat.settings = HomeAssistantSettings(enabled=True, port=free_port(), encryption_key=KEY, name="test-voiced",
                                         friendly_name="Test voiced", mdns=False)
    sat.start()
    web_daemon.satellite = sat
    yield sat
    web_daemon.satellite = None
    sat.stop()


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))


async def _connected(port: int, key: str | None = KEY) -> APIClient:
    client = APIClient("127.0.0.1", port, None, noise_psk=key, client_info="voiced tests")
    await client.connect(login=True)
    return client


async def _device_name(port: int) -> str:
    client = await _connected(port)
    try:
        return (await client.device_info()).name
    finally:
        await client.disconnect()


def test_home_assistant_reads_the_device_and_its_entities(satellite):
    async def main():
        client = await _connected(satellite.settings.port)
        try:
            info = await client.device_info()
            entities, _services = await client.list_entities_services()
            return info, entities
        finally:
            await client.disconnect()
    info, entities = run(main())
    print("device:", info.name, info.friendly_name, info.mac_address, info.voice_assistant_feature_flags)
    assert info.name == "test-voiced" and info.friendly_name == "Test voiced" and info.mac_address
    flags = info.voice_assistant_feature_flags
    for feature in (F.VOICE_ASSISTANT, F.API_AUDIO, F.ANNOUNCE, F.TIMERS, F.START_CONVERSATION):
        assert flags & feature, f"{feature.name} not offered: {flags}"
    assert [type(e).__name__ for e in entities] == ["MediaPlayerInfo"], entities


def test_a_client_without_the_key_or_with_the_wrong_one_is_refused_clearly(satellite, caplog):
    caplog.set_level(logging.WARNING, logger="voiced.homeassistant")
    wrong = base64.b64encode(os.urandom(32)).decode()
    for key in (None, wrong):
        with pytest.raises(aioesphomeapi.APIConnectionError):
            run(_connected(satellite.settings.port, key))
    assert "speaks plaintext but [homeassistant] encryption_key is set" in caplog.text
    assert "encryption key does not match" in caplog.text
    assert run(_device_name(satellite.settings.port)) == "test-voiced"   # still serving the right client


def test_garbage_and_a_dropped_connection_leave_the_satellite_serving(satellite, caplog):
    caplog.set_level(logging.WARNING, logger="voiced.homeassistant")
    for payload in (b"\x01\x00\x05hello", b"GET / HTTP/1.1\r\n\r\n", b"\x01\xff"):
        with socket.create_connection(("127.0.0.1", satellite.settings.port), timeout=5) as s:
            s.sendall(payload)
            time.sleep(0.2)
    assert "Home Assistant connection" in caplog.text and "closed" in caplog.text
    assert run(_device_name(satellite.settings.port)) == "test-voiced"


def test_home_assistant_lists_and_changes_the_wake_word(satellite, web_daemon):
    async def main(choice):
        client = await _connected(satellite.settings.port)
        try:
            config = await client.get_voice_assistant_configuration(10)
            await client.set_voice_assistant_configuration(choice)
            return config
        finally:
            await client.disconnect()

    before = tuple(web_daemon.settings.wake.models)
    config = run(main(["alexa"]))
    ids = [w.id for w in config.available_wake_words]
    print("available:", ids, "active:", config.active_wake_words)
    assert "hey_jarvis" in ids and "alexa" in ids and list(config.active_wake_words) == list(before)
    end = time.monotonic() + 20
    while tuple(web_daemon.settings.wake.models) != ("alexa",) and time.monotonic() < end:
        time.sleep(0.1)
    assert tuple(web_daemon.settings.wake.models) == ("alexa",)
    run(main(list(before)))
    end = time.monotonic() + 20
    while tuple(web_daemon.settings.wake.models) != before and time.monotonic() < end:
        time.sleep(0.1)
    assert tuple(web_daemon.settings.wake.models) == before


def test_the_media_player_volume_is_set_from_home_assistant(satellite, web_daemon):
    async def main():
        client = await _connected(satellite.settings.port)
        states = []
        client.subscribe_states(states.append)
        await asyncio.sleep(0.3)
        client.media_player_command(1, volume=0.4)
        await asyncio.sleep(0.5)
        await client.disconnect()
        return states
    try:
        states = run(main())
        assert web_daemon.playback.volume == pytest.approx(0.4)
        assert any(abs(getattr(s, "volume", 0) - 0.4) < 1e-6 for s in states), states
    finally:
        web_daemon.playback.volume = 1.0
        satellite.volume = 1.0


def test_the_satellite_is_announced_for_home_assistant_to_discover(web_daemon):
    """mDNS: Home Assistant finds ESPHome devices as _esphomelib._tcp (zeroconf, as it browses)."""
    from zeroconf import Zeroconf

    from voiced.homeassistant.satellite import Satellite

    sat = Satellite(web_daemon)
    sat.settings = HomeAssistantSettings(enabled=True, host="0.0.0.0", port=free_port(), name="mdns-voiced",
                                         friendly_name="mDNS voiced", mdns=True)
    sat.start()
    browser = Zeroconf()
    try:
        info = browser.get_service_info("_esphomelib._tcp.local.", "mdns-voiced._esphomelib._tcp.local.", timeout=5000)
        assert info is not None, "not announced"
        print("announced:", info.port, info.parsed_addresses(), info.properties)
        assert info.port == sat.settings.port and info.properties[b"friendly_name"] == b"mDNS voiced"
        assert info.properties[b"mac"] == sat.mac.replace(":", "").lower().encode()
    finally:
        browser.close()
        sat.stop()
