"""The database door: every statement the service writes by hand lives in this package, as literal
SQL text beside the typed function that runs it, named for what it does.

One module per subject: `locks` (the book and patron locks), `loans` (counts, the lend's insert,
returns, availability), `holds`, `blocks`, `state` (what a lend decides on, in one read), `outbox`,
`history`, `notices`, `calendar`, `rules`, `privacy`, `session`. Each statement is a module-level
constant (`BUMP_BOOK_VERSION = "UPDATE ..."`) so that a reader sees the SQL that runs, and a test per
statement (`tests/db/`) checks its answer against the ORM's (or a hand-built
expectation) on PostgreSQL and on SQLite. Where SQLite needs another text, `Variants` keeps the two
side by side. Nothing here compiles a QuerySet or touches Django's private internals: the ORM stays
the way the rest of the code reads and writes rows, and this package is where a round trip matters.

`lending.db.run` holds the few helpers every module uses (a cursor, the backend's date-time and JSON
adaptation, model instances from rows, and `together`: several INSERTs in one round trip).
"""
