"""The Django admin for library staff: loans (overdue ones marked, searched by email, book id or item
barcode; declare lost, claim returned, resolve as found through the API's services), the desk's
check-out and check-in pages (`lending.admin.desk`), holds, the outbox with a replay of
dead letters, idempotency records (read-only). API keys are in the admin through
`rest_framework_api_key`'s own registration."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, cast

from django.contrib import admin, messages
from django.db.models import Q, QuerySet
from django.utils import timezone
from django.utils.html import format_html

if TYPE_CHECKING:
    _ModelAdmin = admin.ModelAdmin  # what the search mixin is mixed into
else:
    _ModelAdmin = object

from lending.admin import desk as desk_admin
from lending.admin.history import HoldEventInline, LoanEventInline
from lending.errors import LendingError
from lending.models import Hold, IdempotencyRecord, Loan, LoanQuerySet, LoanStatus, OutboxMessage, OutboxStatus
from lending.outbox import dead_letters
from lending.services import lost
from lending.write_context import WriteContext

admin.site.site_header = "Lending service"
admin.site.site_title = "Lending service admin"
admin.site.index_title = "Loans, holds and deliveries"
# The index with the desk's pages first (for staff holding desk_admin.DESK_PERMISSION).
admin.site.index_template = "admin/lending/index.html"


class LoanStatusFilter(admin.SimpleListFilter):
    """The status the API reports: a loan is OVERDUE as soon as its due date passes, before the
    scheduled job stores it."""

    title = "status"
    parameter_name = "status"

    def lookups(self, request, model_admin):
        return LoanStatus.choices

    def queryset(self, request, queryset: QuerySet[Loan]) -> QuerySet[Loan]:
        if self.value() not in LoanStatus.values:
            return queryset
        loans = cast(LoanQuerySet, queryset)  # the changelist's queryset is Loan.objects'
        return loans.with_shown_status(self.value(), timezone.now())  # the API's `?status=`


class ItemOrTitleFilter(admin.SimpleListFilter):
    """A loan of one copy (checked out by its barcode) or of a title (`/lendBook/`)."""

    title = "lent as"
    parameter_name = "lent_as"

    def lookups(self, request, model_admin):
        return [("copy", "A copy (barcode)"), ("title", "A title")]

    def queryset(self, request, queryset: QuerySet[Loan]) -> QuerySet[Loan]:
        if self.value() == "copy":
            return queryset.filter(item_barcode__isnull=False)
        if self.value() == "title":
            return queryset.filter(item_barcode__isnull=True)
        return queryset


class NoAddNoDeleteAdmin(admin.ModelAdmin):
    """Rows that change only through the services (locks, outbox): staff look, they do not add or
    delete."""

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class TextOrBookIdSearch(_ModelAdmin):
    """`=book_id` matches the id exactly; a non-numeric term cannot match it, so it searches the text
    fields only (no cast error). `exact_text_fields` match a whole term (an item barcode, which may
    have letters)."""

    exact_text_fields: tuple[str, ...] = ()

    def get_search_results(self, request, queryset, search_term):
        if not search_term.strip().isdigit():
            term = search_term.strip()
            matches = Q(user_email__icontains=term) | Q(book_title__icontains=term)
            for field in self.exact_text_fields:
                matches |= Q(**{field: term})
            return queryset.filter(matches), False
        return super().get_search_results(request, queryset, search_term)


@admin.register(Loan)
class LoanAdmin(TextOrBookIdSearch, NoAddNoDeleteAdmin):
    inlines = [LoanEventInline]
    list_display = (
        "id",
        "user_email",
        "book_id",
        "book_title",
        "item_barcode",
        "date_borrowed",
        "date_due",
        "date_returned",
        "status_badge",
        "renewals",
    )
    list_display_links = ("id", "user_email")
    list_filter = (LoanStatusFilter, ItemOrTitleFilter, "date_due", "date_borrowed")
    # `=book_id` and `=item_barcode` match exactly (a scanned barcode); the email matches any part of it.
    search_fields = ("user_email", "=book_id", "book_title", "=item_barcode")
    exact_text_fields = ("item_barcode",)
    date_hierarchy = "date_due"
    ordering = ("-date_borrowed", "-id")
    list_per_page = 50
    # Loans change only through the API's services (locks, outbox): staff look, they do not edit.
    readonly_fields = (
        "user_email",
        "book_id",
        "book_title",
        "item_barcode",
        "date_borrowed",
        "date_due",
        "date_returned",
        "status",
        "renewals",
    )

    actions = ["declare_lost", "claim_returned", "resolve_found"]

    @admin.action(description="Declare selected loans lost", permissions=["change"])
    def declare_lost(self, request, queryset: QuerySet[Loan]) -> None:
        self._apply(request, queryset, "declared lost", lost.declare_lost)

    @admin.action(description="Record the patron's claim that they returned it", permissions=["change"])
    def claim_returned(self, request, queryset: QuerySet[Loan]) -> None:
        self._apply(request, queryset, "claimed returned", lost.claim_returned)

    @admin.action(description="Resolve selected lost or claimed-returned loans as found", permissions=["change"])
    def resolve_found(self, request, queryset: QuerySet[Loan]) -> None:
        self._apply(request, queryset, "resolved as found", functools.partial(lost.resolve, outcome="found"))

    def _apply(self, request, queryset: QuerySet[Loan], done: str, change: Callable[..., Loan]) -> None:
        """The API's service for each loan, as the staff user (in each loan's history); a loan the
        service refuses is named with its reason, the others still change."""
        changed, refused = 0, []
        context = WriteContext(caller=desk_admin.staff_caller(request))
        for loan_id in queryset.order_by("id").values_list("id", flat=True):
            try:
                change(loan_id, context=context)
                changed += 1
            except LendingError as refusal:
                refused.append(f"loan {loan_id}: {refusal.message}")
        self.message_user(request, f"{changed} loan(s) {done}.", messages.SUCCESS if changed else messages.WARNING)
        if refused:
            self.message_user(request, "Not changed: " + "; ".join(refused), messages.WARNING)

    def get_urls(self):
        return desk_admin.urls() + super().get_urls()

    @admin.display(description="status", ordering="date_due")
    def status_badge(self, loan: Loan) -> str:
        status = loan.current_status
        if status == LoanStatus.OVERDUE:
            days = (timezone.now() - loan.date_due).days
            return format_html('<strong class="overdue" style="color:#ba2121">⚠ OVERDUE</strong> ({} days)', days)
        return status


@admin.register(Hold)
class HoldAdmin(TextOrBookIdSearch, NoAddNoDeleteAdmin):
    inlines = [HoldEventInline]
    list_display = (
        "id",
        "user_email",
        "book_id",
        "book_title",
        "status",
        "item_barcode",
        "date_reserved",
        "pickup_deadline",
        "date_closed",
        "loan",
    )
    list_filter = ("status", "date_reserved", "pickup_deadline")
    search_fields = ("user_email", "=book_id", "book_title", "=item_barcode")
    exact_text_fields = ("item_barcode",)
    ordering = ("-id",)
    readonly_fields = [f.name for f in Hold._meta.fields]


@admin.register(OutboxMessage)
class OutboxMessageAdmin(NoAddNoDeleteAdmin):
    list_display = (
        "id",
        "kind",
        "book_id",
        "recipient",
        "message_type",
        "status_code",
        "attempts",
        "next_attempt_at",
        "short_error",
        "created_at",
        "delivered_at",
    )
    list_filter = ("status", "kind", "created_at")
    search_fields = ("=key", "=book_id", "payload__user_email")
    ordering = ("-id",)
    actions = ["replay"]
    readonly_fields = (
        "key",
        "kind",
        "book_id",
        "payload",
        "status",
        "attempts",
        "claims",
        "next_attempt_at",
        "last_error",
        "created_at",
        "delivered_at",
    )

    def get_search_results(self, request, queryset, search_term):
        """A book id, a message key or part of a recipient's email. No term filters nothing: availability
        messages have no recipient, and an email filter on an empty term would hide every one of them."""
        term = search_term.strip()
        if not term:
            return queryset, False
        if term.isdigit():
            return queryset.filter(book_id=int(term)), False
        try:
            return queryset.filter(key=uuid.UUID(term)), False
        except ValueError:
            return queryset.filter(payload__user_email__icontains=term), False

    @admin.display(description="status", ordering="status")
    def status_code(self, message: OutboxMessage) -> str:
        colours: dict[str, str] = {OutboxStatus.DEAD: "#ba2121", OutboxStatus.PENDING: "#b36b00"}
        colour = colours.get(message.status, "#2e7d32")
        return format_html(
            '<strong class="outbox-{}" style="color:{}">{}</strong>', message.status.lower(), colour, message.status
        )

    @admin.display(description="recipient")
    def recipient(self, message: OutboxMessage) -> str:
        return (message.payload or {}).get("user_email", "")

    @admin.display(description="message type")
    def message_type(self, message: OutboxMessage) -> str:
        return (message.payload or {}).get("message_type", "")

    @admin.display(description="last error")
    def short_error(self, message: OutboxMessage) -> str:
        return message.last_error[:80]

    @admin.action(description="Replay selected dead messages", permissions=["replay"])
    def replay(self, request, queryset: QuerySet[OutboxMessage]) -> None:
        selected = queryset.count()
        replayed = dead_letters.replay(queryset)
        skipped = selected - replayed
        self.message_user(
            request,
            f"Replayed {replayed} dead message(s): the relay delivers them shortly."
            + (f" {skipped} not dead, left alone." if skipped else ""),
            messages.SUCCESS if replayed else messages.WARNING,
        )

    def has_replay_permission(self, request) -> bool:
        return request.user.has_perm("lending.change_outboxmessage")

    def has_change_permission(self, request, obj=None) -> bool:
        # Messages are read-only; staff act on them only through the replay action.
        return False


@admin.register(IdempotencyRecord)
class IdempotencyRecordAdmin(NoAddNoDeleteAdmin):
    list_display = ("key", "response_status", "created_at", "expires_at", "in_progress")
    list_filter = ("response_status", "created_at")
    search_fields = ("=key",)
    ordering = ("-created_at",)
    readonly_fields = [f.name for f in IdempotencyRecord._meta.fields]

    @admin.display(boolean=True, description="in progress")
    def in_progress(self, record: IdempotencyRecord) -> bool:
        return record.response_status is None

    def has_change_permission(self, request, obj=None) -> bool:
        return False
