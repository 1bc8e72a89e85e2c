"""The spec's endpoints and the circulation ones beyond it. Each path answers with and without its
trailing slash (never a redirect: a redirected POST would lose its body)."""

from django.urls import path

from lending.api import (
    circulation,
    circulation_rules,
    docs,
    fines,
    health,
    history,
    items,
    lean_writes,
    lost,
    patron_cards,
    privacy,
    views,
)

docs.document()  # each view's OpenAPI description, from the table beside the views


def both_slashes(route: str, view, name: str) -> list:
    return [path(f"{route}/", view, name=name), path(route, view)]


# The spec's writes answer their plain requests on the lean path (`lean_writes.serving`), the others through DRF.
urlpatterns = [
    *both_slashes("lendBook", lean_writes.serving(views.LendBookApi), "lend-book"),
    *both_slashes("returnBook", lean_writes.serving(views.ReturnBookApi), "return-book"),
    *both_slashes("getExpiredBooks", views.ExpiredBooksApi.as_view(), "expired-books"),
    *both_slashes("renewBook", lean_writes.serving(views.RenewBookApi), "renew-book"),
    *both_slashes("reserveBook", lean_writes.serving(views.ReserveBookApi), "reserve-book"),
    *both_slashes("cancelReservation", lean_writes.serving(views.CancelReservationApi), "cancel-reservation"),
    *both_slashes("reservations", views.ReservationsApi.as_view(), "reservations"),
    *both_slashes("loans", views.LoansApi.as_view(), "loans"),
    *both_slashes("loans/<int:loan_id>", views.LoanDetailApi.as_view(), "loan-detail"),
    *both_slashes("loans/<int:loan_id>/history", history.LoanHistoryApi.as_view(), "loan-history"),
    *both_slashes("loans/<int:loan_id>/change-due-date", circulation.ChangeDueDateApi.as_view(), "change-due-date"),
    *both_slashes("loans/<int:loan_id>/declare-lost", lost.DeclareLostApi.as_view(), "declare-lost"),
    *both_slashes("loans/<int:loan_id>/claim-returned", lost.ClaimReturnedApi.as_view(), "claim-returned"),
    *both_slashes("loans/<int:loan_id>/resolve", lost.ResolveApi.as_view(), "resolve-loan"),
    *both_slashes("loans/<int:loan_id>/fine", fines.LoanFineQuoteApi.as_view(), "loan-fine-quote"),
    *both_slashes("checkouts", items.CheckOutApi.as_view(), "checkouts"),
    *both_slashes("checkins", items.CheckInApi.as_view(), "checkins"),
    *both_slashes("items/<str:barcode>/circulation", items.ItemCirculationApi.as_view(), "item-circulation"),
    *both_slashes("policy", views.PolicyApi.as_view(), "policy"),
    *both_slashes("loan-policies", circulation_rules.LoanPoliciesApi.as_view(), "loan-policies"),
    *both_slashes("loan-policies/<str:name>", circulation_rules.LoanPolicyApi.as_view(), "loan-policy"),
    *both_slashes("circulation-rules", circulation_rules.CirculationRulesApi.as_view(), "circulation-rules"),
    *both_slashes("circulation-rules/explain", circulation_rules.ExplainApi.as_view(), "circulation-rules-explain"),
    *both_slashes("patrons/<str:email>/anonymize", privacy.PatronAnonymizeApi.as_view(), "patron-anonymize"),
    *both_slashes("calendar", circulation.CalendarApi.as_view(), "calendar"),
    *both_slashes("patrons/<str:email>/blocks", circulation.PatronBlocksApi.as_view(), "patron-blocks"),
    *both_slashes("patrons/<str:email>/blocks/<int:block_id>", circulation.PatronBlockApi.as_view(), "patron-block"),
    *both_slashes("patrons/<str:email>/status", circulation.PatronStatusApi.as_view(), "patron-status"),
    *both_slashes("patrons/by-card", patron_cards.PatronByCardApi.as_view(), "patron-by-card"),
    *both_slashes("health", health.health, "health"),
    *both_slashes("health/live", health.live, "health-live"),
    *both_slashes("health/ready", health.ready, "health-ready"),
]
