"""What is not the service: the tools that develop, run, test and measure it, never deployed.

- `tools.harness`: what every tool shares (free ports, managed process groups, a scratch database, the
  service's environment);
- `tools.reference_peers`: Book, User, Notification and Fees peers (`python -m tools.reference_peers`);
- `tools.scripts`: `make run`, `make demo`, a race and the event latency against `make run`, the offline
  lock, dependency and deployment checks;
- `tools.chaos`: the whole system under kills and faults, then every invariant (`python -m tools.chaos`);
- `tools.bench`: the load benchmark (`python -m tools.bench.run`, `make bench`).
"""
