"""The ``mori-credentials`` Prefect block: MORI's credentials, kept on the Prefect server.

Like prefect-aws's ``AwsCredentials``: a block editable in the UI (**Blocks** → **MORI
Credentials**) holding the API key (or an email and password), the webhook signing secret, the
API URL and the API generation. Secrets are :class:`~pydantic.SecretStr`: the UI, ``repr`` and
logs show ``**********``.

A flow run merges a block into the :class:`~mori.settings.Settings` of its process with
:meth:`MoriCredentials.settings`: what the environment sets wins (a worker can always override
a block), the block fills what the environment lacks.
"""

from __future__ import annotations

from typing import Literal

from prefect.blocks.core import Block
from pydantic import Field, SecretStr, field_validator

from mori.settings import Generation, Settings
from tasks.credentials import BLOCK_TYPE

__all__ = ["BLOCK_TYPE", "MoriCredentials"]

#: Fields that authenticate: taken from the block only when the environment has no credentials,
#: so a block's key never replaces the environment's email and password (or the other way round).
_CREDENTIALS = ("api_key", "email", "password")
#: Fields the block fills one by one where the environment has none.
_OTHERS = ("webhook_secret", "api_url", "api_generation")


class MoriCredentials(Block):
    """MORI API credentials for flow runs: an API key, or an email and password."""

    _block_type_name = "MORI Credentials"
    _block_type_slug = BLOCK_TYPE
    _description = (
        "Credentials of the MORI Anti-AI filter API for mori-pipeline's flows: an API key "
        "(or an email and password), the webhook signing secret, the API URL and generation. "
        "Variables in the worker's environment (MORI_API_KEY, ...) win over the block."
    )
    _code_example = """```python
from mori.settings import Settings
from tasks.blocks import MoriCredentials

settings = MoriCredentials.load("default").settings(Settings())
```"""

    api_key: SecretStr | None = Field(
        default=None, title="API key", description="Sent as Authorization: Bearer"
    )
    email: str | None = Field(
        default=None, description="With the password: sign in for an access token (G1 only)"
    )
    password: SecretStr | None = Field(default=None, description="The account's password")
    webhook_secret: SecretStr | None = Field(
        default=None, title="Webhook secret", description="The webhook signing secret"
    )
    api_url: str | None = Field(
        default=None, title="API URL", description="MORI's base URL (default https://morimori.app)"
    )
    api_generation: Literal["g1", "g3"] | None = Field(
        default=None, title="API generation", description="g1 (default) or g3"
    )

    @field_validator("api_key", "email", "password", "webhook_secret", "api_url", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        """An empty field means "not set", as an empty variable does."""
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        if isinstance(value, str):
            value = value.strip() or None
        return value

    @field_validator("api_url")
    @classmethod
    def _no_trailing_slash(cls, value: str | None) -> str | None:
        """``https://host/`` and ``https://host`` are one URL."""
        return value.rstrip("/") if value else value

    @property
    def has_credentials(self) -> bool:
        """An API key, or an email and password to sign in with."""
        return self.api_key is not None or (self.email is not None and self.password is not None)

    def settings(self, base: Settings) -> Settings:
        """``base`` with what it lacks filled from this block (``base``'s own values win).

        The credentials count as one value: when ``base`` has a key or an email and password,
        none of the block's credentials are taken.
        """
        given = {name for name in base.model_fields_set if getattr(base, name) is not None}
        names = _OTHERS if base.has_credentials else _CREDENTIALS + _OTHERS
        update = {
            name: getattr(self, name)
            for name in names
            if name not in given and getattr(self, name) is not None
        }
        return base.model_copy(update=update)

    @classmethod
    def from_settings(cls, settings: Settings) -> MoriCredentials:
        """A block of what ``settings`` took from the environment (defaults stay unset)."""
        given = settings.model_fields_set
        generation: Generation | None = (
            settings.api_generation if "api_generation" in given else None
        )
        return cls(
            api_key=settings.api_key,
            email=settings.email,
            password=settings.password,
            webhook_secret=settings.webhook_secret,
            api_url=settings.api_url if "api_url" in given else None,
            api_generation=generation,
        )

    def same_as(self, other: MoriCredentials) -> bool:
        """The same values, secrets compared in plain text."""
        return all(
            _plain(getattr(self, name)) == _plain(getattr(other, name))
            for name in _CREDENTIALS + _OTHERS
        )


def _plain(value: object) -> object:
    """A secret's plain text; any other value as it is."""
    return value.get_secret_value() if isinstance(value, SecretStr) else value
