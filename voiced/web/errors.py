"""The API's error: ApiError (status + message, answered as JSON {"error": ...}) and its OpenAPI entries."""
from __future__ import annotations

from pydantic import BaseModel


class ApiError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


class ErrorOut(BaseModel):
    error: str


def errors(*codes: int) -> dict:
    """The `responses=` of a route that may answer these error codes."""
    return {code: {"model": ErrorOut} for code in codes}
