"""Whole-call deadlines against a real server that trickles one byte every 0.2 s.

httpx's own timeouts apply per socket operation, so each 0.2 s byte would reset them: without
the client's deadline these requests would run for the 2,000 s the answer takes to trickle.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import httpcore
import pytest

from mori import errors
from mori._transport import DeadlineBackend
from mori.client import MoriClient
from mori.retry import RetryPolicy

from .servers import JSONServer, TrickleServer

DEADLINE = 1.0
#: Generous upper bound on one deadline-bounded attempt on a loaded machine.
SLACK = 4.0

Call = Callable[[MoriClient, str], object]

CALLS: dict[str, Call] = {
    "api GET": lambda client, url: client.get_order("1"),
    "api POST": lambda client, url: client.create_order(["a.jpg"], idempotency_key="k"),
    "presigned GET": lambda client, url: client.download(f"{url}/r.zip?sig=x"),
    "presigned PUT": lambda client, url: client.upload(f"{url}/u?sig=x", b"x" * 100_000),
}


@pytest.mark.parametrize("where", ["headers", "body"])
@pytest.mark.parametrize("call", sorted(CALLS))
def test_a_trickling_answer_ends_at_the_deadline(where: str, call: str) -> None:
    with (
        TrickleServer(where) as server,
        MoriClient(server.url, "k", timeout=DEADLINE, retry=None) as client,
    ):
        started = time.monotonic()
        with pytest.raises(errors.TimeoutError) as info:
            CALLS[call](client, server.url)
        elapsed = time.monotonic() - started
    assert DEADLINE * 0.9 <= elapsed < DEADLINE + SLACK
    assert info.value.retryable
    assert info.value.reason == "timeout"
    assert "sig=x" not in str(info.value)


def test_the_retry_policy_applies_across_deadline_bound_attempts() -> None:
    policy = RetryPolicy(max_attempts=2, initial_delay=0.0, jitter=0.0)
    with (
        TrickleServer("body") as server,
        MoriClient(server.url, "k", timeout=DEADLINE, retry=policy) as client,
    ):
        started = time.monotonic()
        with pytest.raises(errors.TimeoutError):
            client.get_order("1")
        elapsed = time.monotonic() - started
        assert client.stats.requests == {"get_order": 2}
    assert 2 * DEADLINE * 0.9 <= elapsed < 2 * DEADLINE + SLACK
    assert server.connections == 2


def test_prompt_answers_and_kept_alive_connections_are_unaffected() -> None:
    def answer(method: str, path: str, body: bytes, headers: dict[str, str]) -> tuple:
        return 200, {}, {"data": {"orderId": path.rsplit("/", 1)[1], "status": "complete"}}

    with JSONServer(answer) as server, MoriClient(server.url, "k", timeout=DEADLINE) as client:
        started = time.monotonic()
        ids = [client.get_order(str(i)).order_id for i in range(20)]
        time.sleep(DEADLINE * 1.2)  # an idle kept-alive connection outlives one deadline
        ids.append(client.get_order("late").order_id)
    assert ids == [*map(str, range(20)), "late"]
    assert time.monotonic() - started < 10


def test_the_backend_refuses_to_start_an_operation_past_the_deadline() -> None:
    from mori._transport import deadline

    backend = DeadlineBackend()
    with deadline(-1.0), pytest.raises(httpcore.ConnectTimeout):
        backend.connect_tcp("127.0.0.1", 9, timeout=5.0)
