"""`python -m tools.bench.rereport [results dir]`: rewrite latest.md and latest.png from latest.json."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from tools.bench import report

if __name__ == "__main__":
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent / "results"
    results = json.loads((out / "latest.json").read_text())
    for derived in ("ceiling_rps", "floor", "targets", "rows"):
        results.pop(derived, None)
    print("\n".join(str(f) for f in report.write(results, out)))
