"""The notices' statement: a batch's notices inserted at most once per (loan, type, period), the
unique constraint deciding which are new (`lending.notices`)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from lending.db import run

INSERT_LOAN_NOTICES = (
    "INSERT INTO lending_loannotice (loan_id, notice_type, period, created_at, awaiting_digest) VALUES {rows} "
    "ON CONFLICT (loan_id, notice_type, period) DO NOTHING RETURNING loan_id, period"
)
LOAN_NOTICE_ROW = "(%s, %s, %s, %s, %s)"


def insert_loan_notices(
    notice_type: str, keys: Sequence[tuple[int, int]], *, created_at: datetime, awaiting_digest: bool
) -> list[tuple[int, int]]:
    """Inserts a (loan, period) notice of `notice_type` for each key; answers the keys inserted, not
    those already there."""
    if not keys:
        return []
    created = run.db_datetime(created_at)
    params: list = []
    for loan_id, period in keys:
        params += [loan_id, notice_type, period, created, awaiting_digest]
    rows = ", ".join([LOAN_NOTICE_ROW] * len(keys))
    return [(loan_id, period) for loan_id, period in run.fetch_all(INSERT_LOAN_NOTICES.format(rows=rows), params)]
