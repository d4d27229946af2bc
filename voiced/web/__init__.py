"""The status page, its mic button, and the HTTP API (FastAPI + uvicorn on a thread)."""
from .server import WebServer, create_app, start_web_server

__all__ = ["WebServer", "create_app", "start_web_server"]
