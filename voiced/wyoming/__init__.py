"""Wyoming, the Home Assistant voice protocol (through the `wyoming` library): voiced's models
offered as Wyoming services (server.py), and remote Wyoming services used as voiced's engines
(client.py, remote.py, engines/stt_wyoming.py, engines/tts_wyoming.py)."""
