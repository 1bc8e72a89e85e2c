"""The circulation rules' statements: the version token every change replaces, and the one read of
the whole matrix (`lending.circulation_rules`)."""

from __future__ import annotations

from lending.db.run import execute, fetch_all, fetch_one, is_postgresql

ROW_ID = 1  # the version table has one row
NO_VERSION = ""  # no version row (an emptied table): the rulebook falls back on the environment

READ_VERSION = "SELECT version FROM lending_rulebookversion WHERE id = %s"
SET_VERSION = "UPDATE lending_rulebookversion SET version = %s WHERE id = %s"
INSERT_VERSION = "INSERT INTO lending_rulebookversion (id, version) VALUES (%s, %s)"
LOCK_VERSION = "SELECT version FROM lending_rulebookversion WHERE id = %s FOR UPDATE"

# The version, every rule and its policy's values, from one snapshot (so a change committed meanwhile
# is wholly in or wholly out). A version row without rules answers one row of NULLs (LEFT JOIN).
POLICY_COLUMNS = (
    "name",
    "loan_days",
    "renewals_max",
    "renewal_days",
    "max_loans",
    "holds_allowed",
    "loanable",
    "fine_per_day",
    "fine_grace_days",
    "fine_max",
    "fine_counts_closed_days",
    "lost_item_fee",
    "lost_processing_fee",
    "refund_lost_on_return",
)
READ_MATRIX = (
    "SELECT v.version, r.patron_category, r.item_type, p.name, p.loan_days, p.renewals_max, p.renewal_days,"
    " p.max_loans, p.holds_allowed, p.loanable, p.fine_per_day, p.fine_grace_days, p.fine_max,"
    " p.fine_counts_closed_days, p.lost_item_fee, p.lost_processing_fee, p.refund_lost_on_return"
    " FROM lending_rulebookversion v"
    " LEFT JOIN lending_circulationrule r ON TRUE"
    " LEFT JOIN lending_loanpolicy p ON p.name = r.loan_policy_id"
    " WHERE v.id = %s"
)


def read_version() -> str:
    row = fetch_one(READ_VERSION, [ROW_ID])
    return row[0] if row else NO_VERSION


def replace_version(token: str) -> None:
    if execute(SET_VERSION, [token, ROW_ID]) == 0:
        execute(INSERT_VERSION, [ROW_ID, token])


def lock_version() -> None:
    """Serialises the rules' changes on PostgreSQL (SQLite has one writer at a time anyway)."""
    if is_postgresql():
        fetch_one(LOCK_VERSION, [ROW_ID])


def read_matrix() -> list[tuple]:
    """(version, patron_category, item_type, *the policy's values in `POLICY_COLUMNS`' order) per rule."""
    return fetch_all(READ_MATRIX, [ROW_ID])
