"""Errors the runtime answers clients with. Each carries the HTTP status it maps to."""

from __future__ import annotations

__all__ = [
    "BadRequest",
    "FunctionTimeout",
    "InstanceDied",
    "NotFound",
    "QueueFull",
    "ServeError",
    "StageError",
    "Unavailable",
]


class ServeError(Exception):
    status = 500

    def __init__(self, message: str, *, stage: str | None = None, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.stage = stage
        self.retry_after_s = retry_after_s


class BadRequest(ServeError):
    status = 400


class NotFound(ServeError):
    status = 404


class QueueFull(ServeError):
    status = 429


class StageError(ServeError):
    status = 500


class Unavailable(ServeError):
    status = 503


class FunctionTimeout(ServeError):
    status = 504


class InstanceDied(Unavailable):
    """The instance running a request went away (killed, crashed). The orchestrator retries once elsewhere."""
