"""``requirements.lock``: every dependency pyproject.toml declares is pinned there with hashes,
nothing in it points at this machine, and it pulls no GPU stack."""

from __future__ import annotations

import re
import tomllib

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.support.paths import REPO

#: A pinned requirement and its hashes: ``name==version \\`` then ``--hash=sha256:...`` lines.
PIN = re.compile(
    r"^([A-Za-z0-9._-]+)==(\S+) \\\n((?:    --hash=sha256:[0-9a-f]{64}(?: \\)?\n)+)", re.M
)


def pins() -> dict[str, str]:
    """Every pinned name (canonical) -> version, each with at least one hash."""
    text = (REPO / "requirements.lock").read_text(encoding="utf-8")
    return {canonicalize_name(name): version for name, version, _ in PIN.findall(text)}


def declared() -> set[str]:
    """Every distribution pyproject.toml asks for: dependencies, extras, the build backend."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    lines = list(project["project"]["dependencies"])
    for extra in project["project"]["optional-dependencies"].values():
        lines += extra
    lines += project["build-system"]["requires"]
    names = {canonicalize_name(Requirement(line).name) for line in lines}
    return names - {canonicalize_name(project["project"]["name"])}


def test_every_declared_dependency_is_pinned_with_hashes() -> None:
    pinned = pins()
    assert declared() - set(pinned) == set()
    text = (REPO / "requirements.lock").read_text(encoding="utf-8")
    requirement_lines = [line for line in text.splitlines() if re.match(r"^[A-Za-z0-9]", line)]
    assert len(requirement_lines) == len(pinned)  # no line without a version and hashes


def test_the_lock_is_portable_and_small() -> None:
    text = (REPO / "requirements.lock").read_text(encoding="utf-8")
    assert "file://" not in text and "/work/" not in text and "--index-url" not in text
    heavy = {name for name in pins() if re.match(r"(torch|nvidia-|tensorflow|jax|cuda)", name)}
    assert heavy == set()
