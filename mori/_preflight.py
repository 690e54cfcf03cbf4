"""A quick check that MORI is usable as configured, before a run plans anything.

Two (three with a sign-in) unretried requests with short timeouts, none with a side effect:

1. ``GET /api/v2/orders/0`` -- an order that does not exist: a JSON 404 (or 400, or a 200)
   proves the URL reaches MORI and the credentials are accepted; 401/403 say they are not.
2. ``POST`` the generation's confirm route with ``{}`` and no idempotency key: MORI refuses it
   (400 ``IDEMPOTENCY_KEY_REQUIRED`` / ``INVALID_REQUEST``...) without doing anything. A 404 or
   405 there means the route does not exist: the server speaks the other API generation.

Every failure is a :class:`~mori.errors.PreflightError` with a ``cause`` and a one-line ``fix``.
"""

from __future__ import annotations

from typing import Any, Protocol

import httpx

from mori import _parse, errors
from mori._dialects import dialect
from mori._redact import redact_url

__all__ = ["PROBE_ORDER_ID", "run_preflight"]

PROBE_ORDER_ID = "0"
#: Seconds a probe may take in all, and to connect.
PROBE_SECONDS = 10.0
CONNECT_SECONDS = 5.0

_NETWORK_CAUSES: dict[str | None, errors.PreflightCause] = {
    "dns": "dns",
    "refused": "refused",
    "tls": "tls",
    "timeout": "timeout",
}
_NETWORK_FIXES: dict[str, str] = {
    "dns": "check MORI_API_URL: its host name does not resolve",
    "refused": "check MORI_API_URL: nothing accepts connections at that host and port",
    "tls": "check MORI_API_URL: the TLS handshake failed (https:// to a plain-HTTP server, or an "
    "untrusted certificate)",
    "timeout": "check MORI_API_URL and the network: MORI did not answer in time",
}


class Probe(Protocol):
    """One unretried, authenticated API request."""

    def __call__(
        self, method: str, path: str, json: Any, *, within: float, connect: float
    ) -> httpx.Response: ...


def _credentials_fix(auth_mode: str) -> str:
    """What to check when MORI refuses the credentials."""
    if auth_mode == "token":
        return "check MORI_EMAIL and MORI_PASSWORD"
    if auth_mode == "api_key":
        return "check MORI_API_KEY"
    return "set MORI_API_KEY (or MORI_EMAIL and MORI_PASSWORD)"


class _Checker:
    """The probes of one preflight, with what it needs to explain a failure."""

    def __init__(
        self, probe: Probe, base_url: str, generation: str, auth_mode: str, timeout: float
    ) -> None:
        self.probe, self.generation, self.auth_mode = probe, generation, auth_mode
        self.where = redact_url(base_url)
        self.within = min(timeout, PROBE_SECONDS)
        self.connect = min(self.within, CONNECT_SECONDS)

    def fail(
        self, message: str, cause: errors.PreflightCause, fix: str, *, passing: bool = False
    ) -> errors.PreflightError:
        """A :class:`~mori.errors.PreflightError` about MORI at the configured URL."""
        return errors.PreflightError(
            f"MORI at {self.where}: {message}", cause=cause, fix=fix, passing=passing
        )

    def send(self, method: str, path: str, json: Any) -> tuple[httpx.Response, Any]:
        """One probe and its JSON body; network and sign-in failures as preflight errors."""
        try:
            response = self.probe(method, path, json, within=self.within, connect=self.connect)
        except errors.AuthenticationError as exc:
            raise self.fail(
                f"the sign-in was refused ({exc.detail_message})",
                "unauthorized",
                _credentials_fix(self.auth_mode),
            ) from None
        except errors.TransportError as exc:
            cause = _NETWORK_CAUSES.get(exc.reason, "unexpected")
            fix = _NETWORK_FIXES.get(cause, "check MORI_API_URL and the network")
            passing = cause in ("timeout", "unexpected")  # a dropped or reset connection
            raise self.fail(f"unreachable ({exc})", cause, fix, passing=passing) from None
        except errors.APIStatusError as exc:
            later = exc.status_code >= 500 or exc.status_code == 429
            fix = "try again later" if later else "check MORI_API_URL"
            raise self.fail(str(exc), "unexpected", fix, passing=later) from None
        except errors.MoriError as exc:
            raise self.fail(str(exc), "unexpected", "check MORI_API_URL") from None
        return response, _parse.body_of(response)

    def refused(self, response: httpx.Response, route: str) -> None:
        """Raise for 401/403, 429 and 5xx answers to a probe of ``route``."""
        status = response.status_code
        if status == 401:
            message = f"{route} answered 401: the credentials were not accepted"
            raise self.fail(message, "unauthorized", _credentials_fix(self.auth_mode))
        if status == 403:
            message = f"{route} answered 403: these credentials may not use the order API"
            raise self.fail(message, "forbidden", _credentials_fix(self.auth_mode) + " (its plan)")
        if status == 429:
            message = f"{route} answered 429: the plan's request budget is exhausted"
            raise self.fail(message, "unexpected", "wait a minute, then try again", passing=True)
        if status >= 500:
            raise self.fail(
                f"{route} answered HTTP {status}",
                "unexpected",
                "try again later (MORI failed)",
                passing=True,
            )

    def check_auth(self) -> None:
        """The order lookup answers a JSON 404 (unknown order) or 200 with these credentials."""
        route = f"GET /api/v2/orders/{PROBE_ORDER_ID}"
        response, body = self.send("GET", f"/orders/{PROBE_ORDER_ID}", None)
        self.refused(response, route)
        if response.is_success or (response.status_code in (400, 404) and isinstance(body, dict)):
            return
        raise self.fail(
            f"{route} answered HTTP {response.status_code}"
            + ("" if isinstance(body, dict) else " without a JSON body"),
            "unexpected",
            "check MORI_API_URL: it does not look like the MORI API",
        )

    def check_generation(self) -> None:
        """The generation's confirm route exists (it refuses ``{}``; it is not unknown)."""
        path = dialect(self.generation).confirm_path
        route = f"POST /api/v2{path}"
        response, body = self.send("POST", path, {})
        self.refused(response, route)
        unknown = (
            response.status_code in (404, 405) and _parse.error_code(body) != "ORDER_NOT_FOUND"
        )
        if unknown:
            other = "g3" if self.generation == "g1" else "g1"
            raise self.fail(
                f"{route} does not exist (HTTP {response.status_code}): the server speaks"
                " another API generation",
                "wrong_generation",
                f"set MORI_API_GENERATION={other}",
            )


def run_preflight(
    probe: Probe, *, base_url: str, generation: str, auth_mode: str, timeout: float
) -> None:
    """Check the URL, the credentials and the generation (see the module docstring)."""
    checker = _Checker(probe, base_url, generation, auth_mode, timeout)
    checker.check_auth()
    checker.check_generation()
