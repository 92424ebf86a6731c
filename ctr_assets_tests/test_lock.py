"""The locks in requirements/ match pyproject.toml: refresh them with requirements/refresh."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
REFRESH = "requirements/refresh"
# The interpreters the locks are resolved for (pyproject's requires-python).
PYTHONS = ("3.11", "3.12")


@dataclass
class Pin:
    version: str
    marker: Marker | None
    hashes: int = 0
    direct: bool = False  # asked for by pyproject.toml or requirements/build.in

    def applies(self, python: str) -> bool:
        if self.marker is None:
            return True
        return self.marker.evaluate(
            {"python_version": python, "python_full_version": f"{python}.0"}
        )


@dataclass
class Lock:
    pins: dict[str, list[Pin]] = field(default_factory=dict)
    header: str = ""


_PIN = re.compile(r"^([A-Za-z0-9._-]+)(?:\[[^\]]*\])?==([^\s;]+)\s*(?:;\s*(.+?))?\s*\\?$")


def read_lock(path: Path) -> Lock:
    lock, current = Lock(), None
    lines = path.read_text().splitlines()
    lock.header = "\n".join(line for line in lines[:3] if line.startswith("#"))
    for line in lines:
        pinned = _PIN.match(line)
        if pinned:
            name, version, marker = pinned.groups()
            current = Pin(version, Marker(marker) if marker else None)
            lock.pins.setdefault(canonicalize_name(name), []).append(current)
        elif current is not None and line.strip().startswith("--hash=sha256:"):
            current.hashes += 1
        elif current is not None and re.search(r"\(pyproject\.toml\)|requirements/build\.in", line):
            current.direct = True
    return lock


def _wanted(extras: list[str]) -> list[Requirement]:
    names = [*PYPROJECT["project"]["dependencies"], *PYPROJECT["build-system"]["requires"]]
    for extra in extras:
        names += PYPROJECT["project"]["optional-dependencies"][extra]
    return [Requirement(name) for name in names]


LOCKS = {
    "requirements/run.txt": [],
    "requirements/test.txt": sorted(PYPROJECT["project"]["optional-dependencies"]),
}


@pytest.mark.parametrize(("lock_file", "extras"), LOCKS.items())
def test_every_dependency_is_locked_with_hashes_at_a_version_pyproject_allows(
    lock_file: str, extras: list[str]
) -> None:
    lock = read_lock(ROOT / lock_file)
    problems = []
    for requirement in _wanted(extras):
        pins = lock.pins.get(canonicalize_name(requirement.name), [])
        for python in PYTHONS:
            chosen = [pin for pin in pins if pin.applies(python)]
            if len(chosen) != 1:
                problems.append(f"{requirement.name}: {len(chosen)} pins for Python {python}")
            elif not requirement.specifier.contains(chosen[0].version, prereleases=True):
                problems.append(f"{requirement}: locked at {chosen[0].version}")
    assert problems == [], f"{lock_file} is stale; run {REFRESH}: {problems}"


@pytest.mark.parametrize(("lock_file", "extras"), LOCKS.items())
def test_the_lock_asks_for_nothing_pyproject_does_not(lock_file: str, extras: list[str]) -> None:
    lock = read_lock(ROOT / lock_file)
    direct = {name for name, pins in lock.pins.items() if any(pin.direct for pin in pins)}
    wanted = {canonicalize_name(r.name) for r in _wanted(extras)}
    assert direct == wanted, f"{lock_file} is stale; run {REFRESH}"


@pytest.mark.parametrize("lock_file", LOCKS)
def test_every_locked_package_has_hashes(lock_file: str) -> None:
    lock = read_lock(ROOT / lock_file)
    unhashed = [name for name, pins in lock.pins.items() if any(p.hashes == 0 for p in pins)]
    assert unhashed == []
    assert len(lock.pins) > 50  # the whole tree, not only the direct dependencies
    assert REFRESH in lock.header


def test_the_build_backend_in_the_lock_is_pyprojects() -> None:
    lines = (ROOT / "requirements" / "build.in").read_text().splitlines()
    listed = [line for line in lines if line.strip() and not line.startswith("#")]
    assert listed == PYPROJECT["build-system"]["requires"]


def test_the_core_packages_are_the_same_in_both_locks() -> None:
    run, test = read_lock(ROOT / "requirements/run.txt"), read_lock(ROOT / "requirements/test.txt")
    for name, pins in run.pins.items():
        for python in PYTHONS:
            ours = [p.version for p in pins if p.applies(python)]
            theirs = [p.version for p in test.pins.get(name, []) if p.applies(python)]
            # The test lock may need a package on more Pythons than the product does (an
            # extra's marker is wider), never another version of it.
            if ours:
                assert ours == theirs, f"{name} differs between the locks; run {REFRESH}"


def test_a_dependency_missing_from_the_lock_is_found(tmp_path: Path) -> None:
    """The check above can fail: a lock without dagster-postgres is stale."""
    text = (ROOT / "requirements/run.txt").read_text()
    stripped = re.sub(r"(?ms)^dagster-postgres==.*?(?=^\S)", "", text)
    assert stripped != text
    (tmp_path / "run.txt").write_text(stripped)
    lock = read_lock(tmp_path / "run.txt")
    assert "dagster-postgres" not in lock.pins
    assert "dagster-postgres" in {canonicalize_name(r.name) for r in _wanted([])}
