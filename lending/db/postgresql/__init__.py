"""Django's PostgreSQL backend with a health check that costs no round trip and a cursor kept for the
statements of `lending.db` (`base.DatabaseWrapper`)."""
