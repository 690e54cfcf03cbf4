"""Login accounts: access tokens as Bearer values of their account, expiry, usage and limits."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from mori.emulator import EmulatorConfig, EmulatorServer
from tests.support.clock import FakeClock
from tests.support.images import make_image

from .conftest import OTHER_KEY, Api, expect_error

EMAIL, PASSWORD = "ana@example.com", "s3cret:with-colon"
LOGINS = {EMAIL: PASSWORD, "bo@example.com": "other"}


def _login(server: EmulatorServer, email: str = EMAIL, password: str = PASSWORD) -> httpx.Response:
    return httpx.post(
        f"{server.url}/api/v2/auth/login", json={"email": email, "password": password}
    )


def _session(server: EmulatorServer) -> tuple[str, dict[str, Any]]:
    """Log in; the access token and the response ``data``."""
    response = _login(server)
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()["data"]
    return response.headers["accessToken"], data


def test_login_answers_token_user_and_contract(
    make_server: Callable[..., EmulatorServer], generation: str
) -> None:
    server = make_server(logins=LOGINS, usage_limit=500)
    response = _login(server)
    assert response.status_code == 200, response.text
    body = response.json()
    if generation == "g1":
        assert body["success"] is True and isinstance(body["message"], str)
    else:
        assert set(body) == {"data"}
    token = response.headers["accessToken"]
    assert len(token) >= 32
    user, contract = body["data"]["user"], body["data"]["contract"]
    assert user["id"] == 1 and user["email"] == EMAIL  # ids by email order
    assert isinstance(user["apiKey"], str) and len(user["apiKey"]) >= 32
    assert isinstance(user["migrationKey"], str) and user["migrationKey"] != user["apiKey"]
    assert token not in (user["apiKey"], user["migrationKey"])
    assert isinstance(contract["planType"], str) and contract["planStartDate"].endswith("Z")
    assert contract["planEndDate"] is None
    assert contract["currentUsage"] == 0 and contract["usageLimit"] == 500
    second = _login(server, "bo@example.com", "other").json()["data"]["user"]
    assert second["id"] == 2 and second["apiKey"] != user["apiKey"]
    assert _login(server).headers["accessToken"] != token  # every login, a new token
    assert server.stats()["requests"]["login"] == 3


@pytest.mark.parametrize(
    ("email", "password"),
    [
        (EMAIL, "wrong"),
        (EMAIL, PASSWORD.upper()),
        ("nobody@example.com", PASSWORD),
        ("bo@example.com", PASSWORD),  # another account's password
    ],
)
def test_wrong_email_or_password_is_401(
    make_server: Callable[..., EmulatorServer], generation: str, email: str, password: str
) -> None:
    server = make_server(logins=LOGINS)
    response = _login(server, email, password)
    expect_error(response, 401, "UNAUTHORIZED", generation)
    assert "accessToken" not in response.headers


def test_login_is_neither_rate_limited_nor_a_fault_target(
    make_server: Callable[..., EmulatorServer],
) -> None:
    server = make_server(logins=LOGINS, rpm=1, faults="any:503=1", clock=FakeClock())
    for _ in range(3):
        assert _login(server).status_code == 200
    assert server.stats()["faults_injected"] == {} and server.stats()["rate_limited"] == 0


@pytest.mark.generations("g1")
def test_email_is_matched_ignoring_case(make_server: Callable[..., EmulatorServer]) -> None:
    server = make_server(logins=LOGINS)
    assert _login(server, " ANA@Example.com ").status_code == 200


@pytest.mark.parametrize(
    ("body", "property_name"),
    [
        ({"password": PASSWORD}, "email"),
        ({"email": EMAIL}, "password"),
        ({"email": EMAIL, "password": 7}, "password"),
        ([EMAIL, PASSWORD], "body"),
    ],
)
def test_login_validation(
    make_server: Callable[..., EmulatorServer], generation: str, body: Any, property_name: str
) -> None:
    server = make_server(logins=LOGINS)
    response = httpx.post(f"{server.url}/api/v2/auth/login", json=body)
    expect_error(response, 400, "INVALID_REQUEST", generation)
    assert response.json()["errors"]["propertyName"] == property_name


def test_token_and_api_key_are_one_account(make_server: Callable[..., EmulatorServer]) -> None:
    server = make_server(logins=LOGINS)
    token, data = _session(server)
    by_token, by_key = Api(server, token), Api(server, data["user"]["apiKey"])
    key = str(uuid.uuid4())
    first = by_token.create(["a.png"], key=key)
    assert first.status_code == 200, first.text
    order_id = first.json()["data"]["orderId"]
    replay = by_key.create(["a.png"], key=key)  # the same account's idempotency key
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert replay.json()["data"]["orderId"] == order_id
    assert by_key.order(order_id)["orderId"] == order_id
    assert by_key.confirm(order_id).status_code == 400  # FILES_NOT_UPLOADED: found, not 404
    assert Api(server, OTHER_KEY).http.get(f"/api/v2/orders/{order_id}").status_code == 404
    assert server.stats()["orders_created"] == 1


def test_token_and_api_key_share_the_rate_limit(
    make_server: Callable[..., EmulatorServer],
) -> None:
    server = make_server(logins=LOGINS, rpm=2, clock=FakeClock())
    token, data = _session(server)
    by_token, by_key = Api(server, token), Api(server, data["user"]["apiKey"])
    assert by_token.http.get(by_token.webhooks_path).status_code == 200
    assert by_key.http.get(by_key.webhooks_path).status_code == 200
    by_token.error(by_token.http.get(by_token.webhooks_path), 429, "RATE_LIMIT_EXCEEDED")
    assert Api(server, OTHER_KEY).http.get(by_key.webhooks_path).status_code == 200


def test_expired_token_is_401(make_server: Callable[..., EmulatorServer]) -> None:
    clock = FakeClock()
    server = make_server(logins=LOGINS, token_ttl=60, clock=clock)
    token, data = _session(server)
    api = Api(server, token)
    clock.advance(59)
    assert api.http.get("/api/v2/orders/1").status_code == 404  # still authenticated
    clock.advance(1)
    message = api.error(api.http.get("/api/v2/orders/1"), 401, "UNAUTHORIZED")
    assert "expired" in message
    assert Api(server, data["user"]["apiKey"]).http.get("/api/v2/orders/1").status_code == 404
    fresh, _ = _session(server)
    assert Api(server, fresh).http.get("/api/v2/orders/1").status_code == 404


def test_usage_counts_files_sent_to_processing(
    make_server: Callable[..., EmulatorServer],
) -> None:
    server = make_server(logins=LOGINS)
    token, data = _session(server)
    api = Api(server, token)
    api.wait_finished(api.submit({"a.png": make_image("PNG"), "b.png": make_image("PNG")}))
    api.create(["never-confirmed.png"])  # not sent to processing: not counted
    Api(server).wait_finished(Api(server).submit({"c.png": make_image("PNG")}))
    assert _session(server)[1]["contract"]["currentUsage"] == 2
    stats = server.stats()
    assert stats["usage"][EMAIL] == 2 and stats["usage"]["bo@example.com"] == 0
    assert sum(stats["usage"].values()) == 3  # and one for the test key's account
    text = httpx.get(f"{server.url}/_emulator/stats").text
    for secret in (token, PASSWORD, "other", data["user"]["apiKey"], data["user"]["migrationKey"]):
        assert secret not in text


def test_enforced_usage_limit(make_server: Callable[..., EmulatorServer]) -> None:
    server = make_server(logins=LOGINS, usage_limit=3, enforce_usage_limit=True)
    token, _ = _session(server)
    api = Api(server, token)
    api.wait_finished(api.submit({"a.png": make_image("PNG"), "b.png": make_image("PNG")}))
    message = api.error(api.create(["c.png", "d.png"]), 403, "USAGE_LIMIT_EXCEEDED")
    assert "usage limit of 3 files" in message
    assert api.create(["c.png"]).status_code == 200
    assert Api(server).create(["a.png", "b.png", "c.png"]).status_code == 200  # its own usage


def test_usage_limit_is_not_enforced_by_default(
    make_server: Callable[..., EmulatorServer],
) -> None:
    server = make_server(logins=LOGINS, usage_limit=1)
    api = Api(server, _session(server)[0])
    api.wait_finished(api.submit({"a.png": make_image("PNG"), "b.png": make_image("PNG")}))
    contract = _session(server)[1]["contract"]
    assert contract["currentUsage"] == 2 and contract["usageLimit"] == 1


def test_secrets_stay_out_of_the_config_repr() -> None:
    config = EmulatorConfig(api_keys=frozenset({"key-123"}), logins={EMAIL: PASSWORD})
    assert PASSWORD not in repr(config) and "key-123" not in repr(config)
    assert dict(config.logins) == {EMAIL: PASSWORD}
    with pytest.raises(TypeError):
        config.logins[EMAIL] = "changed"  # type: ignore[index]


def test_login_accounts_alone_are_enough(make_server: Callable[..., EmulatorServer]) -> None:
    server = make_server(api_keys=frozenset(), logins=LOGINS)
    token, _ = _session(server)
    assert Api(server, token).create(["a.png"]).status_code == 200
    assert Api(server).http.get("/api/v2/orders/1").status_code == 401  # no test key now
