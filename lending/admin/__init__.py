"""The staff admin, loaded by Django's admin autodiscovery (`lending.admin`): `site` registers the loans,
holds, keys and outbox and sets the index; `circulation` the calendar and patron blocks; `rules` the loan
policies and the circulation rules' matrix; `desk` the desk's check-out and check-in pages; `history` the
events' inlines and the keys' scopes; `filters` the change lists' checked filters."""

from lending.admin import circulation, rules, site  # noqa: F401  (each registers its models' admin)
