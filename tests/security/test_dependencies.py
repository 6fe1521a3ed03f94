"""S10: dependencies are pinned (upper bounds) in ``constraints.txt`` and audited.

``constraints.txt`` pins every direct and transitive dependency of ``retrainer[test]`` to the
version CI tested (regenerate: ``.venv/bin/python tests/security/test_dependencies.py >
constraints.txt``; install with ``pip install -e ".[test]" -c constraints.txt``). The test fails
when a dependency is missing from the file or the environment drifted from it. ``pip-audit``
needs its vulnerability database (PyPI or OSV) over the network: with ``RETRAINER_AUDIT=1`` the
test runs it and requires no known vulnerability; offline, the waiver in ``audit_waiver.txt``
must not have expired.
"""

import os
import re
import shutil
import subprocess
import sys
import tomllib
from datetime import date
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[2]
CONSTRAINTS = REPO / "constraints.txt"
WAIVER = Path(__file__).with_name("audit_waiver.txt")


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def closure() -> dict[str, str]:
    """Installed version of every direct and transitive dependency of retrainer[test]."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    todo = [Requirement(r) for r in project["dependencies"]]
    todo += [Requirement(r) for r in project["optional-dependencies"]["test"]]
    found: dict[str, str] = {}
    while todo:
        req = todo.pop()
        if req.marker and not req.marker.evaluate({"extra": ""}):
            continue
        key = _norm(req.name)
        if key in found:
            continue
        try:
            dist = metadata.distribution(req.name)
        except metadata.PackageNotFoundError:
            continue
        found[key] = dist.version
        extras = req.extras or {""}
        for text in dist.requires or []:
            sub = Requirement(text)
            if sub.marker is None or any(sub.marker.evaluate({"extra": e}) for e in extras):
                todo.append(Requirement(str(sub).split(";")[0]))
    return dict(sorted(found.items()))


def pinned() -> dict[str, str]:
    pins = {}
    for line in CONSTRAINTS.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, _, version = line.partition("==")
            pins[_norm(name)] = version
    return pins


def test_every_dependency_is_pinned_to_the_tested_version():
    pins, installed = pinned(), closure()
    missing = sorted(set(installed) - set(pins))
    assert not missing, f"not in constraints.txt (regenerate it): {missing}"
    drifted = {k: (pins[k], v) for k, v in installed.items() if pins[k] != v}
    assert not drifted, f"constraints.txt pin vs installed: {drifted}"
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    for text in project["dependencies"]:
        assert _norm(Requirement(text).name) in pins, text


@pytest.mark.skipif(os.environ.get("RETRAINER_AUDIT") == "1", reason="audited online instead")
def test_the_offline_audit_waiver_has_not_expired():
    expiry = re.search(r"^expires: (\d{4}-\d{2}-\d{2})$", WAIVER.read_text(), re.M)
    assert expiry, "audit_waiver.txt needs an 'expires: YYYY-MM-DD' line"
    assert date.fromisoformat(expiry.group(1)) >= date.today(), "the audit waiver expired"


@pytest.mark.skipif(os.environ.get("RETRAINER_AUDIT") != "1", reason="needs network: set it")
def test_pip_audit_finds_no_known_vulnerability():
    tool = shutil.which("pip-audit") or pytest.fail("pip install pip-audit")
    result = subprocess.run(
        [tool, "-r", str(CONSTRAINTS), "--no-deps", "--disable-pip", "--strict"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr


if __name__ == "__main__":
    sys.stdout.write(
        "# Exact pins of retrainer[test]'s dependencies, the versions CI tested.\n"
        "# Regenerate: .venv/bin/python tests/security/test_dependencies.py > constraints.txt\n"
    )
    sys.stdout.writelines(f"{name}=={version}\n" for name, version in closure().items())
