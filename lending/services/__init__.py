"""Writes, one module per story: lend, return, renew, reserve, cancel, expire, lost items, a due date
changed by staff. Each is one short transaction, under the book's lock (`lending.locks`) where copies or
holds change (a due date's change locks its loan's row); peers are asked before it opens; the rules are
`lending.policy`'s, read against the book's state (`lending.book_state`)."""

from lending.services.cancel import hold_cancel
from lending.services.change_due_date import change_due_date
from lending.services.expire import expire_ready_holds
from lending.services.lend import loan_lend, loan_lend_check
from lending.services.lost import age_overdue_to_lost, claim_returned, declare_lost, resolve
from lending.services.renew import loan_renew
from lending.services.reserve import PlacedHold, hold_reserve
from lending.services.return_book import loan_return

__all__ = [
    "PlacedHold",
    "age_overdue_to_lost",
    "change_due_date",
    "claim_returned",
    "declare_lost",
    "expire_ready_holds",
    "hold_cancel",
    "hold_reserve",
    "loan_lend",
    "loan_lend_check",
    "loan_renew",
    "loan_return",
    "resolve",
]
