"""Issue 27, point 3: a supply chain a platform team can reproduce.

Every virtualenv (make) and the image (Dockerfile) install from hashed lock files in which every
package, transitive ones included, is pinned with its sha256 hashes, and pip runs with
`--require-hashes`; tools/scripts/check_locks.py refuses a lock that is missing, unhashed or stale.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
REQUIREMENTS = ROOT / "requirements"
CHECK_LOCKS = ROOT / "tools" / "scripts" / "check_locks.py"
LOCKS = ("pip", "uv", "base", "test", "bench", "lint")


def _check_locks(directory: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(CHECK_LOCKS), str(directory)], capture_output=True, text=True, timeout=60
    )


def _requirement_entries(lock: Path) -> list[str]:
    """The lock's requirements, each with its continuation lines (hashes) joined."""
    joined = re.sub(r"\\\n", " ", lock.read_text())
    return [line for line in joined.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def test_every_lock_pins_every_package_with_its_hashes():
    for name in LOCKS:
        lock = REQUIREMENTS / f"{name}.lock.txt"
        entries = _requirement_entries(lock)
        assert entries, lock
        for entry in entries:
            assert re.match(r"^[A-Za-z0-9][A-Za-z0-9._-]*==\S+ ", entry), f"{lock.name}: {entry[:80]}"
            assert re.search(r"--hash=sha256:[0-9a-f]{64}", entry), f"{lock.name}: {entry[:80]}"


def test_the_locks_hold_every_direct_pin_and_the_test_lock_extends_the_run_lock():
    proc = _check_locks(REQUIREMENTS)
    assert proc.returncode == 0, proc.stderr
    test_lock = (REQUIREMENTS / "test.lock.txt").read_text()
    # The lint venv's former constraints file is folded into its lock.
    assert not (REQUIREMENTS / "lint-constraints.txt").exists()
    assert re.search(r"^checkov==", (REQUIREMENTS / "lint.lock.txt").read_text(), re.M)
    assert re.search(r"^pip-audit==", test_lock, re.M)


def test_check_locks_refuses_a_stale_or_unhashed_lock(tmp_path):
    copy = tmp_path / "requirements"
    shutil.copytree(REQUIREMENTS, copy)
    # A new direct pin without `make lock`, and a lock line whose hashes were dropped.
    (copy / "base.txt").write_text((copy / "base.txt").read_text() + "six==1.17.0\n")
    lint = (copy / "lint.lock.txt").read_text()
    (copy / "lint.lock.txt").write_text(
        re.sub(r"^(checkov==\S+) \\\n(\s+--hash=\S+ \\\n)*\s+--hash=\S+\n", r"\1\n", lint, flags=re.M)
    )
    proc = _check_locks(copy)
    assert proc.returncode == 1
    assert "base.txt pins six==1.17.0, base.lock.txt holds nothing" in proc.stderr
    assert re.search(r"lint.lock.txt: checkov==\S+ has no sha256 hash", proc.stderr), proc.stderr
    assert "make lock" in proc.stderr


def _make_dry_run(target: str, tmp_path: Path) -> list[str]:
    """The lock checks and pip commands `make -n TARGET` would run from virtualenvs that do not exist yet."""
    done = subprocess.run(
        ["make", "-n", target, f"VENV={tmp_path / 'venv'}", f"LINT_VENV={tmp_path / 'lint'}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return [line for line in done.stdout.splitlines() if "pip install" in line or "check_locks.py" in line]


def test_every_make_install_requires_hashes_from_a_lock(tmp_path):
    for target, locks in (
        ("run", {"pip", "base"}),
        ("test", {"pip", "test", "lint"}),
        ("bench", {"pip", "test", "bench"}),
    ):
        commands = _make_dry_run(target, tmp_path)
        # A stale lock stops the rule before anything is installed.
        assert "tools/scripts/check_locks.py" in commands[0], commands
        installs = [line for line in commands if "pip install" in line]
        used = set()
        for line in installs:
            assert "--require-hashes" in line, line
            used.update(re.findall(r"-r requirements/(\w+)\.lock\.txt", line))
            assert not re.search(r"requirements/\w+\.txt", line.replace(".lock.txt", "")), line
        assert used == locks, (target, installs)


def test_the_dockerfile_installs_every_package_with_require_hashes():
    dockerfile = (ROOT / "Dockerfile").read_text()
    commands = re.sub(r"\\\n", " ", dockerfile)
    installs = [part for part in re.split(r"&&|\n", commands) if re.search(r"\bpip (install|wheel)\b", part)]
    assert len(installs) == 3, installs
    for install in installs:
        assert "--require-hashes" in install, install
        assert re.search(r"-r /tmp/requirements/(pip|base|test)\.lock\.txt", install), install


# --- pip-audit (make lint) ------------------------------------------------------------------------


def _audit_module():
    spec = importlib.util.spec_from_file_location(
        "audit_dependencies", ROOT / "tools" / "scripts" / "audit_dependencies.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_make_lint_audits_the_locks():
    lint_rule = re.search(r"^lint:.*\n((?:\t.*\n)+)", (ROOT / "Makefile").read_text(), re.M)
    assert lint_rule, "no lint rule"
    assert "tools/scripts/check_locks.py" in lint_rule.group(1)
    assert "tools/scripts/audit_dependencies.py" in lint_rule.group(1)


def test_an_answered_vulnerability_fails_the_audit(capsys):
    """pip-audit's JSON report (its `--format json`) as the advisory database answers it."""
    audit = _audit_module()
    answered = {
        "dependencies": [
            {
                "name": "django",
                "version": "3.2.0",
                "vulns": [{"id": "PYSEC-2021-98", "fix_versions": ["3.2.4"], "aliases": ["CVE-2021-33203"]}],
            },
            {"name": "six", "version": "1.17.0", "vulns": []},
        ]
    }
    assert audit.report([audit.read_report("base.lock.txt", answered)]) == 1
    err = capsys.readouterr().err
    assert "KNOWN VULNERABILITY django==3.2.0: PYSEC-2021-98 (CVE-2021-33203); fixed in 3.2.4" in err


def test_an_unanswered_audit_says_so_and_passes(capsys):
    audit = _audit_module()
    unanswered = {
        "dependencies": [
            {"name": "six", "skip_reason": "Dependency not found on PyPI and could not be audited: six (1.17.0)"}
        ]
    }
    clean = {"dependencies": [{"name": "six", "version": "1.17.0", "vulns": []}]}
    assert audit.report([audit.read_report("base.lock.txt", unanswered)]) == 0
    assert "audit: offline, nothing audited: no verdict" in capsys.readouterr().out
    assert audit.report([audit.read_report("base.lock.txt", clean)]) == 0
    assert "no known vulnerability in the packages audited" in capsys.readouterr().out


def test_the_audit_of_a_vulnerable_release_fails_or_says_it_could_not_check(tmp_path):
    """pip-audit itself, on a lock of Django 3.2.0 (many known vulnerabilities): when the advisory
    database answers, the audit fails and names them; when it does not, it says so and passes."""
    lock = tmp_path / "old.lock.txt"
    lock.write_text("django==3.2.0 --hash=sha256:" + "0" * 64 + "\n")
    proc = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "scripts" / "audit_dependencies.py"), str(lock)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if "did not answer" in proc.stdout:
        assert proc.returncode == 0, proc.stderr
        assert "old.lock.txt: the advisory database did not answer" in proc.stdout
    else:
        assert proc.returncode == 1, proc.stdout + proc.stderr
        assert "KNOWN VULNERABILITY django==3.2.0" in proc.stderr


# --- images by digest -----------------------------------------------------------------------------


def test_every_base_image_is_pinned_by_tag_and_digest():
    """A rebuilt tag upstream changes nothing until the digest is moved (`docker buildx imagetools
    inspect NAME:TAG`, the Dockerfile's header). Stages built FROM an earlier stage are exempt."""
    dockerfile = (ROOT / "Dockerfile").read_text()
    stages = re.findall(r"^FROM\s+(\S+)\s+AS\s+(\S+)", dockerfile, re.M | re.I)
    names = {stage for _, stage in stages}
    external = [image for image, _ in stages if image not in names]
    assert external, stages
    for image in external:
        assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm@sha256:[0-9a-f]{64}", image), image


# --- LICENSE, SECURITY.md, CHANGELOG.md -------------------------------------------------------------


def _version() -> str:
    match = re.search(r'^version = "([^"]+)"', (ROOT / "pyproject.toml").read_text(), re.M)
    assert match
    return match.group(1)


def test_the_license_is_mit_with_the_contributors_copyright():
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License\n")
    assert re.search(r"^Copyright \(c\) \d{4} the Lending Management service contributors$", text, re.M)
    assert "Permission is hereby granted, free of charge, to any person obtaining a copy" in text
    assert 'THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND' in text
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == "MIT" and project["license-files"] == ["LICENSE"]


def test_the_security_policy_says_how_to_report_and_what_is_supported():
    text = (ROOT / "SECURITY.md").read_text()
    headings = re.findall(r"^## (.+)$", text, re.M)
    assert {"Supported versions", "Reporting a vulnerability"} <= set(headings)
    major_minor = ".".join(_version().split(".")[:2])
    assert f"| {major_minor}.x" in text
    assert "never in a public issue" in text


def test_the_changelog_follows_keep_a_changelog_and_names_this_version():
    text = (ROOT / "CHANGELOG.md").read_text()
    assert "[Keep a Changelog](https://keepachangelog.com/en/1.1.0/)" in text
    releases = re.findall(r"^## \[([^\]]+)\](?: - (\d{4}-\d{2}-\d{2}))?$", text, re.M)
    assert releases[0] == ("Unreleased", "")
    assert (_version(), releases[1][1]) in releases and releases[1][1], releases
    kinds = set(re.findall(r"^### (.+)$", text, re.M))
    assert kinds <= {"Added", "Changed", "Deprecated", "Removed", "Fixed", "Security"}, kinds
