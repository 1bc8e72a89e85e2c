"""What every tool around the service does the same way: chaos, bench, scripts and the tests' process helpers.

- `tools.harness.processes`: a free port, a managed process group (start, wait until it answers, stop cleanly);
- `tools.harness.database`: a scratch PostgreSQL database, created for a run and dropped after it;
- `tools.harness.environment`: the service's environment (peers' URLs, database, production-like settings) and the
  reference peers' command line.
Bulk loans (PostgreSQL COPY) live with the benchmark: tools/bench/data.py, used by tools.bench.run,
tools.bench.privacy and tools.bench.explain.
"""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
