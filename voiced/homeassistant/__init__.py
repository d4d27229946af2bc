"""Home Assistant: voiced as its voice satellite (ESPHome native API)."""
