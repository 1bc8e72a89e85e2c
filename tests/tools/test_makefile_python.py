"""The Makefile checks the Python version before it makes a virtualenv: with an interpreter too old,
`make run` (or `make test`) stops at once with one line saying what to run instead, which is also
what the README advises, and leaves no half-made virtualenv behind."""

from __future__ import annotations

import re
import subprocess
import sys

from tests.processes import ROOT

README = (ROOT / "README.md").read_text()


def make(*args: str) -> subprocess.CompletedProcess:
    command = ["make", "--no-print-directory", *args]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)


def advice(done: subprocess.CompletedProcess) -> str:
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    assert len(lines) == 1, done.stdout + done.stderr
    return lines[0]


def make_in_scratch_venvs(goal: str, tmp_path) -> tuple[subprocess.CompletedProcess, str]:
    """`make GOAL` with an interpreter below the minimum (PYTHON_MIN above this one stands for a
    Python 3.10 meeting 3.11), scratch virtualenv paths, and PY=true so that no recipe past the
    virtualenv could start anything."""
    venv, lint_venv = tmp_path / "venv", tmp_path / "venv-lint"
    done = make(
        goal, f"PYTHON_BIN={sys.executable}", "PYTHON_MIN=99.0", f"VENV={venv}", f"LINT_VENV={lint_venv}", "PY=true"
    )
    assert done.returncode != 0
    assert not venv.exists() and not lint_venv.exists(), "a virtualenv was made before the version check"
    return done, f"rm -rf {venv} {lint_venv}"


def test_an_old_python_stops_make_run_before_any_virtualenv(tmp_path):
    done, remove = make_in_scratch_venvs("run", tmp_path)
    line = advice(done)
    assert line.startswith("make: Python >= 99.0 is needed"), line
    assert line.endswith(f": run {remove} && make run PYTHON_BIN=python3.12"), line


def test_the_advice_names_the_goal_it_stopped(tmp_path):
    done, remove = make_in_scratch_venvs("test", tmp_path)
    assert advice(done).endswith(f": run {remove} && make test PYTHON_BIN=python3.12")


def test_the_readme_gives_the_same_advice():
    to_run = advice(make("python-version", "PYTHON_MIN=99.0")).partition(": run ")[2]
    assert to_run == "rm -rf .venv .venv-lint && make run PYTHON_BIN=python3.12"
    assert f"`{to_run}`" in README
    assert not re.search(r"PYTHON_BIN=python3\.1\d`\s*\(then `rm -rf", README), "rm -rf .venv comes first"


def test_a_recent_python_passes_the_check():
    assert make("python-version", f"PYTHON_BIN={sys.executable}").returncode == 0
