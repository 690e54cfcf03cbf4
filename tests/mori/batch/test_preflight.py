"""Which preflight failures end a run (no retry fixes them) and which only warn (a passing
fault at MORI), and the one line each becomes. The causes themselves are met for real, end to
end, in ``tests/deployments/test_cli_errors.py``."""

from __future__ import annotations

import pytest

from mori import errors
from mori.batch.preflight import describe, is_transient


def _preflight_error(
    cause: errors.PreflightCause, message: str, *, passing: bool = False
) -> errors.PreflightError:
    return errors.PreflightError(message, cause=cause, fix="the fix", passing=passing)


@pytest.mark.parametrize("passing", [False, True])
def test_only_passing_faults_are_transient(passing: bool) -> None:
    assert is_transient(_preflight_error("unexpected", "x", passing=passing)) is passing


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
