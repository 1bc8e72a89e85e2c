"""Benchmark-only settings: the production settings, with a URLconf that adds the ceiling view."""

from config.settings import *  # noqa: F403

ROOT_URLCONF = "tools.bench.urls"
