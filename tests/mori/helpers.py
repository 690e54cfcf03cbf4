"""Helpers for the SDK unit tests: a scripted MockTransport handler and answers."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx

API_KEY = "sk-SECRET"
BASE_URL = "https://mori.test"

Step = httpx.Response | BaseException | Callable[[httpx.Request], httpx.Response]


class Script:
    """A MockTransport handler answering with ``steps`` in turn (the last one repeats)."""

    def __init__(self, *steps: Step) -> None:
        assert steps
        self.steps = list(steps)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        step = self.steps.pop(0) if len(self.steps) > 1 else self.steps[0]
        if isinstance(step, BaseException):
            raise step
        if isinstance(step, httpx.Response):
            return step
        return step(request)

    @property
    def last(self) -> httpx.Request:
        return self.requests[-1]

    def bodies(self) -> list[Any]:
        return [json.loads(r.content) if r.content else None for r in self.requests]


def ok(
    data: Any = None, *, envelope: bool = True, status: int = 200, **headers: str
) -> httpx.Response:
    """A success response: ``{"success": true, "message": "ok", "data": ...}`` or bare data."""
    body: dict[str, Any] = {"success": True, "message": "ok"} if envelope else {}
    if data is not None:
        body["data"] = data
    return httpx.Response(status, json=body, headers=headers)


def fail(
    status: int, code: str | None = None, message: str = "nope", **headers: str
) -> httpx.Response:
    """A failure envelope ``{"success": false, "message": ..., "code": ...}``."""
    body: dict[str, Any] = {"success": False, "message": message}
    if code is not None:
        body["code"] = code
    return httpx.Response(status, json=body, headers=headers)


class CountingLimiter:
    """A rate limiter that counts its acquisitions and reports a 0.25 s wait for each."""

    def __init__(self) -> None:
        self.calls = 0

    def acquire(self) -> float:
        self.calls += 1
        return 0.25
