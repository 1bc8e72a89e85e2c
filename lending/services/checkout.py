"""Check out a copy by its barcode, at the desk or a kiosk: scan the patron's card (or name their
email), then the item. A barcoded loan is a lend like any other (`lending.services.lend.lend_copy`),
under the same book lock, with the copy's own refusals: `item_not_loanable` (the Book service's
`loanable: false`, or a loan policy that keeps such copies in), `item_on_loan`, `item_on_hold_shelf`.
The copy's item type and the patron's category pick the loan policy (`lending.circulation_rules`)."""

from __future__ import annotations

from lending import errors
from lending.clients import books, users
from lending.models import Loan
from lending.services.lend import lend_copy
from lending.write_context import SYSTEM_WRITE, WriteContext


def check_out(
    *,
    item_barcode: str,
    patron_barcode: str | None = None,
    user_email: str | None = None,
    context: WriteContext = SYSTEM_WRITE,
) -> Loan:
    """Lends the copy to the patron holding the card `patron_barcode` (resolved at the User service,
    never stored), or to `user_email`. The peers are asked first, as a lend asks them: the item (its
    book, whether it is for loan), the patron, the book (its copies)."""
    item = books.get_item(item_barcode)
    if not item.loanable:
        raise errors.ITEM_NOT_LOANABLE.error(item_barcode=item.barcode)
    patron = _patron(patron_barcode, user_email)
    book = books.get_book(item.book_id)
    return lend_copy(patron=patron, book=book, context=context, item_barcode=item.barcode, item_type=item.type)


def _patron(patron_barcode: str | None, user_email: str | None) -> users.Patron:
    """The active patron, with the email every loan names (lower-case) and their category."""
    if patron_barcode is not None:
        patron = users.active_patron_by_card(patron_barcode)
        return users.Patron(email=patron.email.lower(), category=patron.category)
    if user_email is None:
        raise ValueError("check_out needs patron_barcode or user_email")
    return users.active_patron(user_email)
