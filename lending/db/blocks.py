"""The patron blocks' statements: every write asks for the blocks in force."""

from __future__ import annotations

from datetime import datetime

from lending.db.run import columns, db_datetime, instances
from lending.models import PatronBlock

# A patron's blocks that have not expired at a moment, oldest first.
BLOCKS_IN_FORCE = (
    f"SELECT {columns(PatronBlock)} FROM lending_patronblock"  # noqa: S608 - the model's column names
    " WHERE user_email = %s AND (expires_at IS NULL OR expires_at > %s) ORDER BY id"
)


def blocks_in_force(user_email: str, now: datetime) -> list[PatronBlock]:
    return instances(PatronBlock, BLOCKS_IN_FORCE, [user_email, db_datetime(now)])
