"""What the ``mori-pipeline`` command prints when something expected goes wrong.

An expected failure -- MORI unusable, a bad manifest, a bad option or variable, a file that
cannot be read or written, the Prefect API out of reach -- ends a command with one line on
stderr (``error: <what>: <fix>``) and exit code 1, never a traceback; ``--debug`` prints the
traceback too. Anything else is a bug and keeps its traceback.

:func:`quiet_prefect_console` keeps Prefect's INFO lines off the terminal while ``run`` shows
its own progress (they still reach the Prefect API, so the UI shows them).
"""

from __future__ import annotations

import atexit
import logging
import sys
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

__all__ = [
    "CommandError",
    "first_problem",
    "guarded",
    "is_expected",
    "one_line",
    "quiet_prefect_console",
    "report_error",
]


class CommandError(Exception):
    """A command cannot do what was asked; ``str()`` says why and what to change."""


def _expected_types() -> tuple[type[BaseException], ...]:
    """Exception types that are a user's or an environment's problem, not a bug."""
    import httpx
    from pydantic import ValidationError

    from mori.batch.manifest import ManifestError
    from mori.batch.preflight import PreflightFailed
    from mori.errors import MoriError
    from tasks.credentials import CredentialsError

    return (
        CommandError,
        CredentialsError,
        ManifestError,
        MoriError,
        OSError,
        PreflightFailed,
        ValidationError,
        httpx.HTTPError,
    )


def is_expected(exc: BaseException) -> bool:
    """Whether ``exc`` is an expected failure (one line) rather than a bug (a traceback)."""
    return isinstance(exc, _expected_types()) or _unreachable_prefect(exc) is not None


def one_line(exc: BaseException) -> str:
    """``exc`` as one line: what went wrong and, where known, what to do about it."""
    from pydantic import ValidationError

    if isinstance(exc, ValidationError):
        return first_problem(exc)
    if (url := _unreachable_prefect(exc)) is not None:
        from mori.client import redact_url

        return (
            f"cannot reach the Prefect API at {redact_url(url)}: check PREFECT_API_URL "
            "(is `prefect server start` running?)"
        )
    if isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
        return f"{exc.strerror}: {exc.filename}"
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def first_problem(exc: Any) -> str:
    """One line for a pydantic ``ValidationError``: the option (or variable) and what is wrong."""
    error = exc.errors(include_url=False)[0]
    where = ".".join(str(part) for part in error["loc"]) or "input"
    return f"{where.replace('_', '-')}: {error['msg']}"


def guarded(command: Callable[[], int], *, debug: bool = False) -> int:
    """``command()``; an expected failure becomes one line on stderr and exit code 1."""
    try:
        return command()
    except Exception as exc:
        if not is_expected(exc):
            raise
        return report_error(exc, debug=debug)


def report_error(exc: BaseException, *, debug: bool = False) -> int:
    """Print ``error: <one line>`` on stderr (after the traceback with ``debug``); exit code 1."""
    if debug:
        traceback.print_exception(exc, file=sys.stderr)
    print(f"error: {one_line(exc)}", file=sys.stderr)
    return 1


def _unreachable_prefect(exc: BaseException) -> str | None:
    """``PREFECT_API_URL`` when ``exc`` is the Prefect client failing to reach that API."""
    if "prefect" not in sys.modules:  # no Prefect client ran in this process
        return None
    import httpx
    from prefect.settings import get_current_settings

    api = get_current_settings().api.url
    if not api:
        return None
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, httpx.TransportError) and _sent_to(current, api):
            return api
        current = current.__cause__ or current.__context__
    return None


def _sent_to(exc: Any, api: str) -> bool:
    """Whether the failed request of an httpx error went to ``api``."""
    try:
        url = str(exc.request.url)
    except RuntimeError:  # an httpx error raised without its request
        return False
    return url.startswith(api.rstrip("/"))


@contextmanager
def quiet_prefect_console(enabled: bool = True) -> Iterator[None]:
    """Show only warnings and errors of Prefect's console handler inside the block (and
    when the process exits). An explicit ``PREFECT_LOGGING_LEVEL`` below INFO keeps every
    line."""
    from prefect.logging.handlers import PrefectConsoleHandler
    from prefect.settings import get_current_settings

    level = logging.getLevelName(str(get_current_settings().logging.level).upper())
    if not enabled or (isinstance(level, int) and level < logging.INFO):
        yield
        return
    handlers = [h for h in logging.getLogger().handlers if isinstance(h, PrefectConsoleHandler)]
    saved = [h.level for h in handlers]
    _set_levels(handlers, logging.WARNING)
    try:
        yield
    finally:
        for handler, before in zip(handlers, saved, strict=True):
            handler.setLevel(before)
        # Prefect stops its temporary server at exit with an INFO line; this runs first
        # (``atexit`` runs the last registered first) and keeps that line off the console too.
        atexit.register(_set_levels, handlers, logging.WARNING)


def _set_levels(handlers: Sequence[logging.Handler], level: int) -> None:
    """Set every handler's level."""
    for handler in handlers:
        handler.setLevel(level)
