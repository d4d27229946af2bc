"""voiced: a headless, always-on voice daemon."""
__version__ = "0.1.0"
