"""Prefect automations kept as files (``deployments/automations/*.yaml``), applied by name.

Each file is one automation in Prefect's own format (the keys ``prefect automation create
--from-file`` reads), plus ``block: <block type>/<block name>`` on an action: the notification
(or webhook) block is named rather than given by id, so the file works on any server.
:func:`apply_automation` resolves the name, then creates the automation, updates it when the
file changed, or leaves it alone; an automation whose block does not exist yet is skipped.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:
    from prefect.client.orchestration import SyncPrefectClient
    from prefect.events.schemas.automations import AutomationCore

__all__ = ["AUTOMATIONS", "MissingBlock", "apply_automation", "automation_definition"]

#: The folder of the project's automations.
AUTOMATIONS = Path(__file__).resolve().parent / "automations"

_ACTION_LISTS = ("actions", "actions_on_trigger", "actions_on_resolve")


class MissingBlock(LookupError):
    """An action names a block that does not exist on the server."""


def automation_definition(path: Path, client: SyncPrefectClient) -> AutomationCore:
    """The automation in ``path``, its ``block:`` names resolved to block ids on the server."""
    from prefect.events.schemas.automations import AutomationCore
    from prefect.exceptions import ObjectNotFound

    data: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    for key in _ACTION_LISTS:
        for action in data.get(key) or []:
            reference = action.pop("block", None)
            if reference is None:
                continue
            block_type, _, name = str(reference).partition("/")
            try:
                document = client.read_block_document_by_name(name, block_type)
            except ObjectNotFound:
                raise MissingBlock(reference) from None
            action["block_document_id"] = str(document.id)
    return AutomationCore.model_validate(data)


def apply_automation(path: Path, client: SyncPrefectClient) -> tuple[str, str]:
    """Create or update the automation of ``path``: its name and ``created``, ``updated``,
    ``unchanged`` or ``skipped (...)``."""
    from prefect.events.schemas.automations import AutomationCore

    try:
        automation = automation_definition(path, client)
    except MissingBlock as exc:
        name = str(yaml.safe_load(path.read_text(encoding="utf-8")).get("name", path.stem))
        return name, f"skipped (no block {exc}: create it, then bootstrap again)"
    existing = client.read_automations_by_name(automation.name)
    if not existing:
        client.create_automation(automation)
        return automation.name, "created"
    current = AutomationCore.model_validate(existing[0].model_dump())
    if current.model_dump(mode="json") == automation.model_dump(mode="json"):
        return automation.name, "unchanged"
    client.update_automation(existing[0].id, automation)
    return automation.name, "updated"
