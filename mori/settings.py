"""Every setting mori-pipeline reads from the environment, in one place.

:class:`Settings` is built once per process (or once per flow run) by the entry point -- the
CLI, a flow, the receiver -- and handed down; no other module reads ``os.environ``. Secrets are
:class:`~pydantic.SecretStr`, so they print as ``**********`` in a ``repr``, a log line or an
exception. S3 credentials are not here: boto3 reads the standard ``AWS_*`` variables itself
(``AWS_ENDPOINT_URL`` for any S3-compatible store).

========================  =======================================================================
variable                  meaning
========================  =======================================================================
MORI_API_URL              MORI's base URL (default ``https://morimori.app``)
MORI_API_KEY              the API key (sent as ``Authorization: Bearer``); wins over email/password
MORI_EMAIL                with MORI_PASSWORD: sign in for an access token instead of using a key
MORI_PASSWORD             the account's password (see MORI_EMAIL)
MORI_API_GENERATION       ``g1`` (default: ``/api/v2/orders``, ``/with-urls``, ``/confirm``) or
                          ``g3`` (``/api/v2/orders/anti-ai``, body ``idempotencyKey``)
MORI_TIMEOUT_SECONDS      the whole-call deadline of one HTTP request (default 30)
MORI_WEBHOOK_SECRET       the webhook signing secret; when set, runs wait for webhook events first
MORI_RATE_LIMIT_RPM       the plan's requests per minute (60 / 300 / 1000); unset = no client limit
MORI_GLOBAL_RATE_LIMIT    name of the Prefect global concurrency limit every worker shares
MORI_LEDGER_URL           the ledger: a path, ``sqlite:///path`` or ``postgresql://...``
MORI_LEDGER_PATH          the older spelling of a ledger path (MORI_LEDGER_URL wins)
MORI_VERIFY_OUTPUTS       how much of each output is checked before it is written: ``header``
                          (default: format and dimensions from the image header) or ``decode``
                          (every output is also decoded, so a damaged one fails)
MORI_CREDENTIALS_BLOCK    the ``mori-credentials`` block ``mori-pipeline run`` merges and
                          ``bootstrap`` saves (default ``default``); flows name theirs in their
                          ``credentials`` parameter
XDG_STATE_HOME            where ledgers of ``s3://`` audits live (default ``~/.local/state``)
PREFECT__WORKER_NAME      set by a Prefect worker for the runs it starts: names it in claims
========================  =======================================================================
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["DEFAULT_API_URL", "DEFAULT_TIMEOUT", "Generation", "Settings", "Verification"]

DEFAULT_API_URL = "https://morimori.app"
DEFAULT_TIMEOUT = 30.0

Generation = Literal["g1", "g3"]
#: How much of each output is checked before it is written (:mod:`mori.batch.outputs`).
Verification = Literal["header", "decode"]


class Settings(BaseSettings):
    """The process's configuration (see the module docstring for every variable).

    ``Settings()`` reads the environment; ``Settings(api_key="...")`` overrides a value (tests,
    the demo). Instances are immutable: derive a changed copy with ``model_copy(update=...)``.
    """

    model_config = SettingsConfigDict(
        env_prefix="MORI_", frozen=True, extra="ignore", populate_by_name=True
    )

    api_url: str = DEFAULT_API_URL
    api_key: SecretStr | None = None
    email: str | None = None
    password: SecretStr | None = None
    api_generation: Generation = "g1"
    timeout_seconds: Annotated[float, Field(gt=0)] = DEFAULT_TIMEOUT
    webhook_secret: SecretStr | None = None
    rate_limit_rpm: Annotated[int | None, Field(ge=0)] = None
    global_rate_limit: str | None = None
    ledger_url: str | None = None
    ledger_path: str | None = None
    credentials_block: str = "default"
    verify_outputs: Verification = "header"
    state_home: Path = Field(
        default_factory=lambda: Path.home() / ".local" / "state",
        validation_alias=AliasChoices("XDG_STATE_HOME", "state_home"),
    )
    worker_name: str | None = Field(
        default=None, validation_alias=AliasChoices("PREFECT__WORKER_NAME", "worker_name")
    )

    @field_validator(
        "api_key",
        "email",
        "password",
        "webhook_secret",
        "rate_limit_rpm",
        "global_rate_limit",
        "ledger_url",
        "ledger_path",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        """An empty (or blank) variable means "not set", as in a shell's ``VAR=``."""
        if isinstance(value, str) and not value.strip():
            return None
        return value.strip() if isinstance(value, str) else value

    @field_validator("api_url", mode="before")
    @classmethod
    def _default_url(cls, value: object) -> object:
        if value is None or (isinstance(value, str) and not value.strip()):
            return DEFAULT_API_URL
        return value.strip().rstrip("/") if isinstance(value, str) else value

    @property
    def rpm(self) -> int | None:
        """The client-side requests-per-minute budget, ``None`` when unlimited (unset or 0)."""
        return self.rate_limit_rpm or None

    @property
    def has_credentials(self) -> bool:
        """An API key, or an email and password to sign in with."""
        return self.api_key is not None or (self.email is not None and self.password is not None)

    @property
    def ledger(self) -> str | None:
        """The ledger named by the environment (``MORI_LEDGER_URL``, else ``MORI_LEDGER_PATH``)."""
        return self.ledger_url or self.ledger_path

    @staticmethod
    def secret(value: SecretStr | None) -> str | None:
        """The plain text of a secret field, or ``None``."""
        return value.get_secret_value() if value is not None else None
