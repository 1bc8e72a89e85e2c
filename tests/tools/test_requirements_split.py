"""`make run` installs only what running needs (requirements/base.txt); the test tools come with
`make test`. Checked with make's dry run from a virtualenv that does not exist yet (a fresh clone)."""

import re
import subprocess

from tests.processes import ROOT

TEST_TOOLS = ("pytest", "ruff", "hypothesis", "playwright", "time-machine", "schemathesis")


def dry_run(target: str, tmp_path) -> str:
    done = subprocess.run(
        ["make", "-n", target, f"VENV={tmp_path / 'venv'}"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_make_run_installs_only_the_run_requirements(tmp_path):
    installs = [line for line in dry_run("run", tmp_path).splitlines() if "pip install" in line and " -r " in line]
    # pip itself, then the run lock (requirements/base.txt compiled with its hashes by `make lock`).
    assert installs and all(
        ("requirements/base.lock.txt" in line or "requirements/pip.lock.txt" in line) for line in installs
    ), installs
    assert any("requirements/base.lock.txt" in line for line in installs), installs
    assert not any("test.lock" in line or "lint.lock" in line for line in installs)


def test_make_test_installs_the_test_tools(tmp_path):
    assert "-r requirements/test.lock.txt" in dry_run("test", tmp_path)


def test_the_run_requirements_hold_no_test_tool():
    names = [
        re.split(r"[=<>\[ ]", line.strip())[0].lower()
        for line in (ROOT / "requirements" / "base.txt").read_text().splitlines()
        if line.strip() and not line.startswith(("#", "-"))
    ]
    assert not set(names) & set(TEST_TOOLS), names
    assert "-r base.txt" in (ROOT / "requirements" / "test.txt").read_text()
