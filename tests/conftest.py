"""Shared fixtures: Prefect's test harness (a temporary API server) for the session, and the
plugins in tests/support: PostgreSQL, a real ``prefect server``, a local S3 endpoint."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from prefect.logging.configuration import setup_logging

# Prefect sets its logging up once, on first use, with a console handler bound to the
# sys.stderr of that moment: set up here, the handler writes to pytest's session-long capture,
# not to the capture of whichever test used Prefect first (closed when that test ends).
setup_logging()

pytest_plugins = [
    "tests.support.postgres",
    "tests.support.prefect_server",
    "tests.support.s3",
]


@pytest.fixture(scope="session")
def prefect() -> Iterator[str]:
    """Prefect's test harness, with the per-flow heartbeat floor removed; yields its API URL
    (for child processes, e.g. the CLI runs of the chaos tests)."""
    from prefect.settings import (
        PREFECT_API_URL,
        PREFECT_FLOWS_HEARTBEAT_FREQUENCY,
        temporary_settings,
    )
    from prefect.testing.utilities import prefect_test_harness

    with (
        prefect_test_harness(server_startup_timeout=60),
        temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}),
    ):
        yield str(PREFECT_API_URL.value())


@pytest.fixture(autouse=True)
def prefect_logs_to_caplog() -> Iterator[None]:
    """Prefect's logger does not propagate; let caplog (and the secrets test) see its records."""
    logger = logging.getLogger("prefect")
    logger.propagate = True
    yield
    logger.propagate = False
