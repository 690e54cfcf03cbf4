"""The pipeline's error codes live in one enum, which the audit's documentation lists."""

from __future__ import annotations

import ast
import re

from mori.batch.codes import ErrorCode
from mori.errors import UnexpectedResponseError
from tests.support.paths import REPO

PACKAGES = ("mori/batch", "flows", "tasks", "deployments")


def test_every_code_is_its_own_name() -> None:
    assert all(code.value == code.name for code in ErrorCode)


def test_the_sdks_unreadable_answer_code_is_the_pipelines() -> None:
    assert UnexpectedResponseError.code == ErrorCode.INVALID_RESPONSE


def test_the_audit_docs_list_every_code() -> None:
    text = (REPO / "docs" / "AUDIT.md").read_text()
    section = text.split("## Error codes", 1)[1].split("\n## ", 1)[0]
    documented = re.findall(r"^\| `([A-Z_]+)` \|", section, re.M)
    assert documented == [code.value for code in ErrorCode]


def test_no_module_spells_a_code_out() -> None:
    """A code written as a string literal would escape the enum (and a typo the tests)."""
    codes = {code.value for code in ErrorCode}
    spelled = []
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            if path.name == "codes.py":
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Constant) and node.value in codes:
                    spelled.append(f"{path.relative_to(REPO)}:{node.lineno} {node.value}")
    assert spelled == []
