"""Which preflight failures end a run (no retry fixes them) and which only warn (a passing
fault at MORI), and the one line each becomes. The causes themselves are met for real, end to
end, in ``tests/deployments/test_cli_errors.py``."""

from __future__ import annotations

import pytest

from mori import errors
from mori.batch.preflight import describe, is_transient


def _preflight_error(
    cause: errors.PreflightCause, message: str, met: errors.MoriError | None = None
) -> errors.PreflightError:
    """A PreflightError as the SDK raises it: ``from None``, the error it met as context."""
    try:
        if met is not None:
            try:
                raise met
            except errors.MoriError:
                raise errors.PreflightError(message, cause=cause, fix="the fix") from None
        raise errors.PreflightError(message, cause=cause, fix="the fix")
    except errors.PreflightError as exc:
        return exc


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (_preflight_error("dns", "unreachable"), False),
        (_preflight_error("refused", "unreachable"), False),
        (_preflight_error("tls", "unreachable"), False),
        (_preflight_error("unauthorized", "GET answered 401"), False),
        (_preflight_error("forbidden", "GET answered 403"), False),
        (_preflight_error("wrong_generation", "POST does not exist"), False),
        (_preflight_error("timeout", "unreachable"), True),
        (_preflight_error("unexpected", "GET /api/v2/orders/0 answered HTTP 503"), True),
        (_preflight_error("unexpected", "GET /api/v2/orders/0 answered 429: budget"), True),
        (_preflight_error("unexpected", "x", errors.TransportError("reset")), True),
        (_preflight_error("unexpected", "x", errors.ServerError("boom", status_code=502)), True),
        (_preflight_error("unexpected", "GET answered HTTP 404 without a JSON body"), False),
        (
            _preflight_error(
                "unexpected",
                "x",
                errors.UnexpectedResponseError("no token", endpoint="login", status_code=200),
            ),
            False,
        ),
    ],
    ids=[
        "dns",
        "refused",
        "tls",
        "401",
        "403",
        "generation",
        "timeout",
        "503",
        "429",
        "dropped",
        "login-502",
        "not-mori",
        "unreadable-login",
    ],
)
def test_only_passing_faults_are_transient(error: errors.PreflightError, transient: bool) -> None:
    assert is_transient(error) is transient


@pytest.mark.parametrize(
    ("cause", "url", "line"),
    [
        (
            "dns",
            "https://morimori.app",
            "cannot resolve morimori.app (DNS): check MORI_API_URL and the network",
        ),
        (
            "refused",
            "http://10.0.0.5",
            "10.0.0.5:80 refused the connection: check MORI_API_URL (host and port) and that "
            "MORI runs there",
        ),
        (
            "unauthorized",
            "https://user:pw@mori.example/?token=t",
            "MORI at https://mori.example rejected the credentials (401): the fix",
        ),
    ],
)
def test_one_line_never_shows_url_secrets(
    cause: errors.PreflightCause, url: str, line: str
) -> None:
    assert describe(_preflight_error(cause, "m"), url, "g1") == line
