"""Run the README's examples in order against a running `make run` and check each documented answer.

    .venv/bin/python tools/scripts/readme_walkthrough.py [--port 8000] [--peers-port 8001]   (make demo)

Every ```bash block of the README is read top to bottom. A line starting with `curl` (with its `\\`
continuation lines) is run with curl itself; a `# 201 {...}` comment after it is its documented
answer: the status must match, and every `"key": value` written in the comment must appear in the
answer (`"..."` stands for any value, `"2027-03-27T..."` for a prefix, a timestamp for any timestamp,
`[]` for an empty list). A line starting with `.venv/bin/python manage.py` is run and must succeed.
Other lines (make, rm, docker, kubectl) are prose for people and are not run. The peers' and the
service's ports are rewritten to the ones given, also in what it prints. Expects a fresh database
(README: "Reset"): a step that fails shows the answer it got and how to start afresh.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
RETRY_SECONDS = 15.0  # a GET may wait for the relay (notifications, availability)
RESET_HINT = (
    "the README's examples expect a fresh database (README, Reset): stop `make run`, then "
    "`rm -f db.sqlite3 && make run` (with DATABASE_URL: drop and recreate that database), then `make demo` again"
)

PAIR = re.compile(r'"(\w+)":\s*("(?:[^"\\]|\\.)*"|-?\d+(?:\.\d+)?|null|true|false)')
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d")


@dataclass
class Step:
    command: str
    line: int
    expected: str = ""  # "201 {...}" from the comment lines after the command
    runs: list[str] = field(default_factory=list)


def bash_blocks(text: str) -> list[tuple[int, list[str]]]:
    blocks: list[tuple[int, list[str]]] = []
    current: list[str] | None = None
    start = 0
    for number, line in enumerate(text.splitlines(), 1):
        if current is None and line.strip() == "```bash":
            current, start = [], number + 1
        elif current is not None and line.strip() == "```":
            blocks.append((start, current))
            current = None
        elif current is not None:
            current.append(line)
    return blocks


def steps_of(text: str) -> list[Step]:
    steps: list[Step] = []
    for start, lines in bash_blocks(text):
        index = 0
        while index < len(lines):
            line = lines[index].strip()
            index += 1
            if not (line.startswith("curl ") or line.startswith(".venv/bin/python manage.py ")):
                continue
            command = line
            while command.endswith("\\") and index < len(lines):
                command = command[:-1] + " " + lines[index].strip()
                index += 1
            step = Step(command, start + index - 1)
            while index < len(lines) and lines[index].strip().startswith("#"):
                comment = lines[index].strip()[1:].strip()
                if re.match(r"^\d{3}\b", comment) or step.expected:
                    step.expected += " " + comment
                index += 1
            steps.append(step)
    return steps


def rewrite_ports(command: str, port: int, peers_port: int) -> str:
    ports = {8000: port, 8001: peers_port, 8002: peers_port + 1, 8003: peers_port + 2, 8007: peers_port + 6}
    return re.sub(r"127\.0\.0\.1:(800[0-37])\b", lambda m: f"127.0.0.1:{ports[int(m.group(1))]}", command)


def flattened(value, pairs: list | None = None) -> list:
    pairs = [] if pairs is None else pairs
    if isinstance(value, dict):
        for key, item in value.items():
            pairs.append((key, item))
            flattened(item, pairs)
    elif isinstance(value, list):
        for item in value:
            flattened(item, pairs)
    return pairs


def value_matches(documented, actual) -> bool:
    if documented == "...":
        return True
    if isinstance(documented, str) and documented.endswith("..."):
        return isinstance(actual, str) and actual.startswith(documented[:-3])
    if isinstance(documented, str) and TIMESTAMP.match(documented):
        return isinstance(actual, str) and bool(TIMESTAMP.match(actual))
    return documented == actual


def mismatches(expected: str, status: int, body: str) -> list[str]:
    documented_status, _, documented_body = expected.strip().partition(" ")
    problems = [] if int(documented_status) == status else [f"status {status}, documented {documented_status}"]
    try:
        answer = json.loads(body)
    except ValueError:
        return problems + [f"not JSON: {body[:200]}"]
    documented_body = documented_body.strip()
    if documented_body.startswith("[") and isinstance(answer, list) and (documented_body == "[]") != (answer == []):
        problems.append(f"documented {documented_body[:2]}, answer has {len(answer)} item(s)")
    pairs = flattened(answer)
    for key, raw in PAIR.findall(documented_body):
        documented = json.loads(raw)
        if not any(k == key and value_matches(documented, v) for k, v in pairs):
            found = [v for k, v in pairs if k == key]
            problems.append(f'"{key}": {raw} documented, answer has {found[:3] or "no such key"}')
    return problems


def run_curl(command: str) -> tuple[int, str]:
    args = shlex.split(command) + ["-w", "\n%{http_code}", "--max-time", "10"]
    done = subprocess.run(args, capture_output=True, text=True)
    body, _, status = done.stdout.rpartition("\n")
    return int(status or 0), body


def run_step(step: Step, port: int, peers_port: int) -> list[str]:
    command = rewrite_ports(step.command, port, peers_port)
    if command.startswith(".venv/bin/python manage.py "):
        args = [sys.executable, *shlex.split(command)[1:]]
        done = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, env=os.environ)
        return [] if done.returncode == 0 else [f"exit {done.returncode}: {done.stderr.strip()[-300:]}"]
    retry_until = time.monotonic() + (RETRY_SECONDS if " -X " not in command else 0)
    while True:
        status, body = run_curl(command)
        problems = mismatches(step.expected, status, body) if step.expected else []
        if status == 0:
            problems.append("no answer (is `make run` up on these ports?)")
        elif problems:
            problems += [f"answer: {status} {' '.join(body.split())[:400]}", RESET_HINT]
        if not problems or time.monotonic() >= retry_until:
            return problems
        time.sleep(0.5)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT") or 8000))
    parser.add_argument("--peers-port", type=int, default=int(os.environ.get("PEERS_PORT") or 8001))
    parser.add_argument("--readme", type=Path, default=README)
    args = parser.parse_args(argv)
    steps = steps_of(args.readme.read_text())
    for number, step in enumerate(steps, 1):
        problems = run_step(step, args.port, args.peers_port)
        command = rewrite_ports(step.command, args.port, args.peers_port)
        label = f"[{number}/{len(steps)}] README line {step.line}: {command[:90]}"
        if problems:
            print(f"FAIL {label}\n  " + "\n  ".join(problems), flush=True)
            return 1
        print(f"ok   {label}  ->  {step.expected.strip()[:60] or 'done'}", flush=True)
    print(f"README walkthrough: all {len(steps)} steps gave their documented answers", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
