"""Check the hashed lock files of requirements/ against the files they are compiled from.

Each `requirements/NAME.txt` lists what the project asks for (its direct pins); `make lock` compiles
it into `requirements/NAME.lock.txt`: every package, transitive ones included, pinned with `==` and
its sha256 hashes, for pip's `--require-hashes`. This script, with the standard library only (it
runs before any virtualenv exists), refuses:

- a lock file that is missing, or holds a package without a hash or without an exact version;
- a direct pin of an input file (or of a file it includes with `-r`) that its lock does not hold at
  that version: the input was edited and `make lock` was not run;
- a package that the test or bench lock holds at another version than the lock it extends, so the
  Docker test stage installs the run image's versions unchanged.

Usage: python3 tools/scripts/check_locks.py [requirements-dir]   (exit 1 with the reasons)
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

# Every lock that `make lock` writes, from its input of the same name.
LOCKS = ("pip", "uv", "base", "test", "bench", "lint")
# A lock compiled with another as its constraints (`-c`): they must agree on every shared package.
EXTENDS = {"test": "base", "bench": "test"}

PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?==([^\s;\\]+)")
HASH = re.compile(r"--hash=sha256:[0-9a-f]{64}")


def normalize(name: str) -> str:
    """PEP 503: names compare lowercased, with runs of -, _ and . as one dash."""
    return re.sub(r"[-_.]+", "-", name).lower()


def logical_lines(text: str) -> list[str]:
    """The requirement lines, with backslash continuations joined and comments dropped."""
    joined = re.sub(r"\\\n", " ", text)
    lines = []
    for raw in joined.splitlines():
        line = raw.split(" #", 1)[0].strip()
        if line and not line.startswith("#"):
            lines.append(line)
    return lines


def direct_pins(path: Path) -> dict[str, str]:
    """The `name==version` pins of an input file and of the files it includes with `-r`."""
    pins: dict[str, str] = {}
    for line in logical_lines(path.read_text()):
        if line.startswith(("-r ", "--requirement ")):
            pins.update(direct_pins(path.parent / line.split(maxsplit=1)[1]))
            continue
        match = PIN.match(line)
        if match:
            pins[normalize(match.group(1))] = match.group(3)
    return pins


def locked(path: Path) -> tuple[dict[str, str], list[str]]:
    """The lock's packages and versions, and what is wrong with any of its lines."""
    packages: dict[str, str] = {}
    errors: list[str] = []
    for line in logical_lines(path.read_text()):
        match = PIN.match(line)
        if not match:
            errors.append(f"{path.name}: not an exact pin: {line[:80]}")
            continue
        if not HASH.search(line):
            errors.append(f"{path.name}: {match.group(1)}=={match.group(3)} has no sha256 hash")
        packages[normalize(match.group(1))] = match.group(3)
    if not packages:
        errors.append(f"{path.name}: no package")
    return packages, errors


def check(directory: Path) -> list[str]:
    errors: list[str] = []
    locks: dict[str, dict[str, str]] = {}
    for name in LOCKS:
        source, lock = directory / f"{name}.txt", directory / f"{name}.lock.txt"
        if not lock.exists():
            errors.append(f"{lock.name} is missing")
            continue
        locks[name], lock_errors = locked(lock)
        errors += lock_errors
        for package, version in direct_pins(source).items():
            if locks[name].get(package) != version:
                held = locks[name].get(package, "nothing")
                errors.append(f"{source.name} pins {package}=={version}, {lock.name} holds {held}")
    for name, base in EXTENDS.items():
        for package, version in locks.get(name, {}).items():
            if package in locks.get(base, {}) and locks[base][package] != version:
                errors.append(f"{name}.lock.txt holds {package}=={version}, {base}.lock.txt {locks[base][package]}")
    return errors


def main(argv: list[str]) -> int:
    directory = Path(argv[1]) if len(argv) > 1 else Path(__file__).resolve().parents[2] / "requirements"
    errors = check(directory)
    for error in errors:
        print(f"check_locks: {error}", file=sys.stderr)
    if errors:
        print("check_locks: regenerate the locks with `make lock` (requirements/README.md)", file=sys.stderr)
        return 1
    print(f"check_locks: {len(LOCKS)} lock files, every package pinned with its hashes and current")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
