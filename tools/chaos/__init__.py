"""The chaos run: the whole system on PostgreSQL under load, process kills and peer faults, then a
check of every invariant. `python -m tools.chaos --help`; `make chaos` runs the full size."""
