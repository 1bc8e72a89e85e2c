"""The load benchmark (`make bench`): see tools/bench/run.py."""
