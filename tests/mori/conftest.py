"""Fixtures for the SDK unit tests: fake time and a client on a scripted MockTransport."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from mori.client import MoriClient
from mori.retry import RetryPolicy
from tests.support.clock import FakeTime

from .helpers import API_KEY, BASE_URL


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


@pytest.fixture
def make_client(fake_time: FakeTime) -> Iterator[Callable[..., MoriClient]]:
    """Build a client on a scripted transport with fake time and a seeded RNG."""
    made: list[MoriClient] = []

    def make(handler: Callable[[httpx.Request], httpx.Response], **kwargs: Any) -> MoriClient:
        kwargs.setdefault("api_key", API_KEY)
        kwargs.setdefault("retry", RetryPolicy(jitter=0.0))
        client = MoriClient(
            BASE_URL,
            transport=httpx.MockTransport(handler),
            sleep=fake_time.sleep,
            clock=fake_time.clock,
            rng=random.Random(1234),
            **kwargs,
        )
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()
