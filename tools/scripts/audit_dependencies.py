"""Known vulnerabilities of every package the project installs: pip-audit over each hashed lock file
of requirements/ (`make lint` runs it).

The verdict depends on whether the advisory database answers:
- it answers and names a vulnerability of a locked release: each one is printed with the releases
  that fix it, and the exit status is 1;
- it answers and names none: the exit status is 0;
- it does not answer (no network, or an index mirror without PyPI's JSON API, where pip-audit reports
  each package as "could not be audited"): this is said, with the number of packages not audited, and
  the exit status is 0. An offline machine cannot check, so it does not fail; it never claims a pass.

pip-audit reads the locks as they are (`--disable-pip`): nothing is installed or downloaded.

Usage: python tools/scripts/audit_dependencies.py [lock files]   (default: requirements/*.lock.txt)
"""

from __future__ import annotations

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# pip-audit's own service: PyPI's JSON API, from the index the lock files were compiled against.
SERVICE = "pypi"
# What pip-audit's error says when the advisory database cannot be reached at all.
UNREACHABLE = ("ConnectionError", "Max retries exceeded", "NameResolutionError", "timed out", "ServiceError")


@dataclass
class Verdict:
    lock: str
    vulnerabilities: list[str] = field(default_factory=list)
    audited: int = 0
    not_audited: list[str] = field(default_factory=list)
    unreachable: str = ""


def read_report(lock: str, report: dict) -> Verdict:
    """The verdict of pip-audit's JSON report on one lock file."""
    verdict = Verdict(lock)
    for dependency in report.get("dependencies", []):
        release = f"{dependency['name']}=={dependency.get('version', '?')}"
        if "skip_reason" in dependency:
            verdict.not_audited.append(f"{dependency['name']}: {dependency['skip_reason']}")
            continue
        verdict.audited += 1
        for vulnerability in dependency.get("vulns", []):
            fixed_in = ", ".join(vulnerability.get("fix_versions") or []) or "no fixed release yet"
            aliases = ", ".join(vulnerability.get("aliases") or [])
            named = f"{vulnerability['id']} ({aliases})" if aliases else vulnerability["id"]
            verdict.vulnerabilities.append(f"{release}: {named}; fixed in {fixed_in}")
    if verdict.not_audited and not verdict.audited:
        verdict.unreachable = verdict.not_audited[0]
    return verdict


def audit(lock: Path) -> Verdict:
    command = [
        sys.executable,
        "-m",
        "pip_audit",
        "--disable-pip",
        "--require-hashes",
        "--requirement",
        str(lock),
        "--vulnerability-service",
        SERVICE,
        "--format",
        "json",
        "--progress-spinner",
        "off",
    ]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=600)
    try:
        return read_report(lock.name, json.loads(proc.stdout))
    except json.JSONDecodeError:
        pass
    if any(marker in proc.stderr for marker in UNREACHABLE):
        last_line = proc.stderr.strip().splitlines()[-1]
        return Verdict(lock.name, unreachable=last_line[:200])
    raise RuntimeError(f"pip-audit failed on {lock.name} (exit {proc.returncode}):\n{proc.stderr[-2000:]}")


def report(verdicts: list[Verdict]) -> int:
    found = [line for verdict in verdicts for line in verdict.vulnerabilities]
    for verdict in verdicts:
        if verdict.unreachable:
            print(
                f"audit: {verdict.lock}: the advisory database did not answer ({verdict.unreachable}); "
                f"{len(verdict.not_audited) or 'its'} packages not audited, not failing"
            )
        elif verdict.not_audited:
            print(f"audit: {verdict.lock}: {verdict.audited} packages audited, not audited: {verdict.not_audited}")
        else:
            print(f"audit: {verdict.lock}: {verdict.audited} packages audited")
    for line in found:
        print(f"audit: KNOWN VULNERABILITY {line}", file=sys.stderr)
    if found:
        print(f"audit: {len(found)} known vulnerabilities: upgrade in requirements/, then `make lock`", file=sys.stderr)
        return 1
    if all(verdict.unreachable for verdict in verdicts):
        print("audit: offline, nothing audited: no verdict")
    else:
        print("audit: no known vulnerability in the packages audited")
    return 0


def main(argv: list[str]) -> int:
    locks = [Path(arg) for arg in argv[1:]] or sorted((ROOT / "requirements").glob("*.lock.txt"))
    with ThreadPoolExecutor(max_workers=len(locks)) as pool:
        verdicts = list(pool.map(audit, locks))
    return report(verdicts)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
