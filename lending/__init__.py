"""The lending service: loans, holds and their side effects (see README "Layout" for what is where)."""
