"""Access-token auth: sign-in, the per-process token cache, refresh, 401 handling, usage."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from mori import errors
from mori._auth import TokenCache
from mori.client import MoriClient
from mori.models import AccountUsage
from tests.support.clock import FakeTime

from .helpers import BASE_URL, Script, fail, ok
from .servers import JSONServer

EMAIL = "ops@example.com"
PASSWORD = "pw-SECRET"
TOKEN = "tok-SECRET-1"
CONTRACT = {
    "planType": "pro",
    "planStartDate": "2026-01-01",
    "planEndDate": None,
    "currentUsage": 120,
    "usageLimit": 1000,
}
LOGIN_DATA = {
    "user": {"id": 7, "email": EMAIL, "apiKey": "sk-SECRET", "migrationKey": "m"},
    "contract": CONTRACT,
}
ORDER = {"orderId": "1", "status": "inProgress"}


class Mori:
    """A MockTransport handler: a login route handing out numbered tokens, and orders that
    accept only the tokens listed in ``valid`` (every issued token unless ``valid`` is set)."""

    def __init__(self, login_data: Any = LOGIN_DATA, **login_headers: str) -> None:
        self.logins = 0
        self.login_data = login_data
        self.login_headers = login_headers
        self.valid: set[str] | None = None
        self.issued: list[str] = []
        self.seen: list[str | None] = []
        self.lock = threading.Lock()
        self.login_delay = 0.0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/v2/auth/login":
            body = json.loads(request.content)
            if (body.get("email"), body.get("password")) != (EMAIL, PASSWORD):
                return fail(401, "INVALID_CREDENTIALS", message="email or password is wrong")
            time.sleep(self.login_delay)
            with self.lock:
                self.logins += 1
                token = f"tok-SECRET-{self.logins}"
                self.issued.append(token)
            headers = {"accessToken": token, **self.login_headers}
            return ok(self.login_data, **headers)
        auth = request.headers.get("Authorization")
        self.seen.append(auth)
        allowed = self.valid if self.valid is not None else set(self.issued)
        if auth not in {f"Bearer {t}" for t in allowed}:
            return fail(401, "UNAUTHORIZED", message="token expired")
        return ok(ORDER)


@pytest.fixture
def make_token_client(
    make_client: Callable[..., MoriClient],
) -> Callable[..., MoriClient]:
    """A client signing in with EMAIL/PASSWORD on a private token cache."""

    def make(handler: Callable[[httpx.Request], httpx.Response], **kwargs: Any) -> MoriClient:
        kwargs.setdefault("api_key", None)
        kwargs.setdefault("email", EMAIL)
        kwargs.setdefault("password", PASSWORD)
        kwargs.setdefault("token_cache", TokenCache())
        return make_client(handler, **kwargs)

    return make


def test_signs_in_once_and_sends_the_token(make_token_client: Callable[..., MoriClient]) -> None:
    mori = Mori()
    client = make_token_client(mori)
    client.get_order("1")
    client.get_order("2")
    assert mori.logins == 1
    assert mori.seen == [f"Bearer {TOKEN}"] * 2
    assert client.stats.requests == {"login": 1, "get_order": 2}


def test_login_request_shape(make_token_client: Callable[..., MoriClient]) -> None:
    script = Script(ok(LOGIN_DATA, accessToken=TOKEN), ok(ORDER))
    make_token_client(script).get_order("1")
    login = script.requests[0]
    assert (login.method, login.url.path) == ("POST", "/api/v2/auth/login")
    assert json.loads(login.content) == {"email": EMAIL, "password": PASSWORD}
    assert "Authorization" not in login.headers
    assert "X-Idempotency-Key" not in login.headers


def test_token_in_the_body_is_accepted(make_token_client: Callable[..., MoriClient]) -> None:
    script = Script(ok({**LOGIN_DATA, "accessToken": "tok-body"}), ok(ORDER))
    make_token_client(script).get_order("1")
    assert script.last.headers["Authorization"] == "Bearer tok-body"


def test_api_key_wins_over_email_and_password(
    make_token_client: Callable[..., MoriClient],
) -> None:
    mori = Mori()
    mori.valid = {"sk-key"}
    client = make_token_client(mori, api_key="sk-key")
    client.get_order("1")
    assert mori.logins == 0
    assert mori.seen == ["Bearer sk-key"]
    assert client.account_usage() is None


@pytest.mark.parametrize(
    ("headers", "data", "lifetime"),
    [
        ({}, LOGIN_DATA, 7200.0),
        ({"expiresIn": "600"}, LOGIN_DATA, 600.0),
        ({}, {**LOGIN_DATA, "expiresIn": 900}, 900.0),
        (
            {"Date": "Thu, 19 Feb 2026 12:00:00 GMT"},
            {**LOGIN_DATA, "expiresAt": "2026-02-19T12:30:00.000Z"},
            1800.0,
        ),
        ({}, {**LOGIN_DATA, "expiresIn": "soon"}, 7200.0),
    ],
    ids=["default-2h", "expiresIn-header", "expiresIn-body", "expiresAt", "unreadable"],
)
def test_refreshes_before_expiry_by_the_injected_clock(
    make_token_client: Callable[..., MoriClient],
    fake_time: FakeTime,
    headers: dict[str, str],
    data: Any,
    lifetime: float,
) -> None:
    mori = Mori(data, **headers)
    client = make_token_client(mori)
    client.get_order("1")
    margin = min(300.0, 0.1 * lifetime)
    fake_time.advance(lifetime - margin - 1)
    client.get_order("1")
    assert mori.logins == 1
    fake_time.advance(2)
    client.get_order("1")
    assert mori.logins == 2
    assert mori.seen[-1] == "Bearer tok-SECRET-2"


def test_a_401_refreshes_once_and_repeats_once(
    make_token_client: Callable[..., MoriClient],
) -> None:
    mori = Mori()
    client = make_token_client(mori)
    client.get_order("1")
    mori.valid = set()  # the server revokes every token: the refreshed one is refused too
    with pytest.raises(errors.AuthenticationError):
        client.get_order("2")
    assert mori.logins == 2
    assert len(mori.seen) == 3  # 1 ok, then 401, sign in, repeat once: 401 again


def test_a_revoked_token_is_replaced_transparently(
    make_token_client: Callable[..., MoriClient],
) -> None:
    mori = Mori()
    client = make_token_client(mori)
    client.get_order("1")
    mori.valid = {"tok-SECRET-2"}  # the first token was revoked; a new sign-in is valid
    assert client.get_order("2").order_id == "1"
    assert mori.seen[-2:] == ["Bearer tok-SECRET-1", "Bearer tok-SECRET-2"]


def test_wrong_credentials(make_token_client: Callable[..., MoriClient]) -> None:
    client = make_token_client(Mori(), password="wrong-SECRET")
    with pytest.raises(errors.AuthenticationError) as info:
        client.get_order("1")
    message = str(info.value)
    assert "MORI_EMAIL" in message and "MORI_PASSWORD" in message
    assert "email or password is wrong" in message
    assert "SECRET" not in message and "SECRET" not in repr(info.value)
    assert not info.value.retryable


def test_a_sign_in_answer_without_a_token(make_token_client: Callable[..., MoriClient]) -> None:
    with pytest.raises(errors.UnexpectedResponseError) as info:
        make_token_client(Script(ok(LOGIN_DATA))).get_order("1")
    assert info.value.endpoint == "login"


def test_clients_of_one_account_share_one_sign_in(
    make_token_client: Callable[..., MoriClient],
) -> None:
    mori = Mori()
    mori.login_delay = 0.05  # real time: the threads pile up behind the first sign-in
    cache = TokenCache()
    clients = [make_token_client(mori, token_cache=cache) for _ in range(4)]
    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(lambda i: clients[i % 4].get_order(str(i)), range(32)))
    assert mori.logins == 1
    other = make_token_client(mori, token_cache=cache, email="other@example.com")
    with pytest.raises(errors.AuthenticationError):
        other.get_order("1")  # another account: its own sign-in (refused here)


@pytest.mark.parametrize(
    ("contract", "expected"),
    [
        (CONTRACT, AccountUsage(plan_type="pro", current_usage=120, usage_limit=1000)),
        ({"currentUsage": "12", "usageLimit": 60}, AccountUsage(current_usage=12, usage_limit=60)),
        ({"currentUsage": "lots", "planType": "free"}, AccountUsage(plan_type="free")),
        (None, AccountUsage()),
    ],
    ids=["full", "numeric-string", "bad-field-dropped", "no-contract"],
)
def test_account_usage(
    make_token_client: Callable[..., MoriClient], contract: Any, expected: AccountUsage
) -> None:
    data: dict[str, Any] = {"user": LOGIN_DATA["user"]}
    if contract is not None:
        data["contract"] = contract
    client = make_token_client(Mori(data))
    usage = client.account_usage()
    fields = ("plan_type", "current_usage", "usage_limit")
    if contract is None:
        assert usage is None
    else:
        assert usage is not None
        assert {f: getattr(usage, f) for f in fields} == {f: getattr(expected, f) for f in fields}


def test_account_usage_signs_in_once_and_refreshes_on_demand(
    make_token_client: Callable[..., MoriClient],
) -> None:
    mori = Mori()
    client = make_token_client(mori)
    usage = client.account_usage()
    assert usage is not None and usage.remaining == 880
    client.account_usage()
    assert mori.logins == 1
    client.account_usage(refresh=True)
    assert mori.logins == 2


def test_account_usage_is_none_with_an_api_key(make_client: Callable[..., MoriClient]) -> None:
    script = Script(ok(ORDER))
    assert make_client(script).account_usage() is None
    assert script.requests == []


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"generation": "g3"}, "MORI_API_KEY"),
        ({"password": None}, "MORI_PASSWORD"),
        ({"email": None}, "MORI_EMAIL"),
    ],
    ids=["g3-has-no-login", "no-password", "no-email"],
)
def test_configuration_errors(
    make_token_client: Callable[..., MoriClient], kwargs: dict[str, Any], match: str
) -> None:
    with pytest.raises(errors.ConfigurationError, match=match) as info:
        make_token_client(Mori(), **kwargs)
    assert "SECRET" not in str(info.value)


def test_g3_with_an_api_key_ignores_the_login(
    make_token_client: Callable[..., MoriClient],
) -> None:
    script = Script(ok(ORDER))
    make_token_client(script, api_key="sk-key", generation="g3").get_order("1")
    assert script.last.headers["Authorization"] == "Bearer sk-key"


def test_secrets_stay_out_of_reprs_and_messages(
    make_token_client: Callable[..., MoriClient], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    mori = Mori()
    client = make_token_client(mori)
    client.get_order("1")
    mori.valid = set()
    with pytest.raises(errors.AuthenticationError) as info:
        client.get_order("1")
    for text in (repr(client), str(info.value), repr(info.value), caplog.text):
        assert "SECRET" not in text


def test_tokens_stay_out_of_httpx_and_httpcore_debug_logs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Over real HTTP: httpcore's debug trace prints response headers (the accessToken)."""

    def answer(method: str, path: str, body: bytes, headers: dict[str, str]) -> tuple:
        if path == "/api/v2/auth/login":
            return 200, {"accessToken": TOKEN}, {"data": LOGIN_DATA}
        assert headers.get("Authorization") == f"Bearer {TOKEN}"
        return 200, {"Set-Cookie": "session=SECRET"}, {"data": ORDER}

    caplog.set_level(logging.DEBUG)
    with (
        JSONServer(answer) as server,
        MoriClient(server.url, email=EMAIL, password=PASSWORD, token_cache=TokenCache()) as client,
    ):
        assert client.get_order("1").order_id == "1"
    assert any(r.name.startswith("httpcore") for r in caplog.records)
    assert "SECRET" not in caplog.text
    assert all("SECRET" not in r.getMessage() for r in caplog.records)


def test_base_url_is_part_of_the_cache_key(make_client: Callable[..., MoriClient]) -> None:
    cache = TokenCache()
    assert cache.slot(BASE_URL, EMAIL, PASSWORD) is cache.slot(BASE_URL + "/", EMAIL, PASSWORD)
    assert cache.slot(BASE_URL, EMAIL, PASSWORD) is not cache.slot("https://b", EMAIL, PASSWORD)
    assert cache.slot(BASE_URL, EMAIL, PASSWORD) is not cache.slot(BASE_URL, EMAIL, "other")
