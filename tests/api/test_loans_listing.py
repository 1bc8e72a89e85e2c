"""Reading loans: `GET /loans/`, `GET /loans/{id}/`, and paging on `getExpiredBooks`."""

import pytest

from tests.factories import LoanFactory, days

pytestmark = pytest.mark.django_db

DETAIL_FIELDS = {
    "id",
    "user_email",
    "book_id",
    "date_borrowed",
    "date_due",
    "date_returned",
    "status",
    "book_title",
    "renewals",
    "loan_policy",
    "fine",
}


@pytest.fixture
def history():
    """alice: an active loan, an overdue loan and a returned one; bob: one active loan."""
    return {
        "alice_returned": LoanFactory(user_email="alice@example.com", book_id=1, borrowed_ago=days(90), returned=True),
        "alice_overdue": LoanFactory(
            user_email="alice@example.com", book_id=2, borrowed_ago=days(70), due_in=days(-10)
        ),
        "alice_active": LoanFactory(user_email="alice@example.com", book_id=3, borrowed_ago=days(5)),
        "bob_active": LoanFactory(user_email="bob@example.com", book_id=1, borrowed_ago=days(3)),
    }


def ids(response) -> list[int]:
    return [loan["id"] for loan in response.json()["results"]]


def test_a_patrons_loans_newest_first_in_two_queries(api, history, django_assert_num_queries):
    with django_assert_num_queries(2):
        response = api.get("/loans/", {"user_email": "Alice@Example.com"})

    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 3 and body["next"] is None and body["previous"] is None
    assert ids(response) == [history[k].pk for k in ("alice_active", "alice_overdue", "alice_returned")]
    assert set(body["results"][0]) == DETAIL_FIELDS
    assert [loan["status"] for loan in body["results"]] == ["ACTIVE", "OVERDUE", "RETURNED"]
    assert response["X-Total-Count"] == "3"


def test_loans_filter_by_book(api, history):
    assert ids(api.get("/loans/", {"book_id": 1})) == [history["bob_active"].pk, history["alice_returned"].pk]


@pytest.mark.parametrize(
    ("status", "expected"),
    [("ACTIVE", ["bob_active", "alice_active"]), ("OVERDUE", ["alice_overdue"]), ("RETURNED", ["alice_returned"])],
)
def test_loans_filter_by_status_as_clients_see_it(api, history, status, expected):
    # alice's overdue loan is still stored ACTIVE: the filter follows the due date, like the answer.
    assert ids(api.get("/loans", {"status": status})) == [history[k].pk for k in expected]


def test_loans_filters_combine(api, history):
    response = api.get("/loans/", {"user_email": "alice@example.com", "status": "ACTIVE", "book_id": 3})
    assert ids(response) == [history["alice_active"].pk]


def test_loans_are_paged_with_a_link_header_and_a_total(api, history):
    first = api.get("/loans/", {"limit": 2})
    body = first.json()
    assert body["count"] == 4 and len(body["results"]) == 2
    assert 'rel="next"' in first["Link"] and 'rel="last"' in first["Link"] and 'rel="prev"' not in first["Link"]
    assert "offset=2" in body["next"]

    second = api.get(body["next"])
    assert len(second.json()["results"]) == 2 and second.json()["next"] is None
    assert 'rel="prev"' in second["Link"] and 'rel="next"' not in second["Link"]
    assert set(ids(first)) | set(ids(second)) == {loan.pk for loan in history.values()}


def test_an_empty_listing(api):
    body = api.get("/loans/", {"user_email": "nobody@example.com"}).json()
    assert body == {"count": 0, "next": None, "previous": None, "results": []}


@pytest.mark.parametrize(
    "params",
    [
        {"limit": 0},
        {"limit": "x"},
        {"limit": 1001},
        {"offset": -1},
        {"status": "MISSING"},
        {"user_email": "nope"},
        {"book_id": 0},
        {"book_id": "abc"},
    ],
)
def test_bad_listing_parameters_are_400(api, params):
    response = api.get("/loans/", params)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_request"


def test_one_loan_by_id_in_one_query(api, history, django_assert_num_queries):
    loan = history["alice_overdue"]
    with django_assert_num_queries(1):
        response = api.get(f"/loans/{loan.pk}/")
    assert response.status_code == 200
    assert response.json()["id"] == loan.pk and response.json()["status"] == "OVERDUE"
    assert api.get(f"/loans/{loan.pk}").status_code == 200


@pytest.mark.parametrize("loan_id", ["999999", str(2**70)])
def test_unknown_loan_is_404(api, loan_id):
    response = api.get(f"/loans/{loan_id}/")
    assert (response.status_code, response.json()["error"]["code"]) == (404, "loan_not_found")


def test_expired_books_stay_a_bare_list_and_page_with_a_link_header(api, django_assert_num_queries):
    loans = [
        LoanFactory(
            user_email=f"late{i}@example.com",
            book_id=i,
            borrowed_ago=days(70),
            due_in=days(-10 + i),
        )
        for i in range(5)
    ]

    unpaged = api.get("/getExpiredBooks/")
    assert [loan["id"] for loan in unpaged.json()] == [loan.pk for loan in loans]
    assert "Link" not in unpaged

    with django_assert_num_queries(1):
        first = api.get("/getExpiredBooks/", {"limit": 2})
    assert isinstance(first.json(), list)
    assert [loan["id"] for loan in first.json()] == [loans[0].pk, loans[1].pk]
    assert 'rel="next"' in first["Link"]

    last = api.get("/getExpiredBooks/", {"limit": 2, "offset": 4})
    assert [loan["id"] for loan in last.json()] == [loans[4].pk]
    assert 'rel="next"' not in last["Link"] and 'rel="prev"' in last["Link"]


def test_expired_books_cap_the_page_at_the_maximum(api, settings):
    settings.API_MAX_PAGE_SIZE = 3
    for i in range(4):
        LoanFactory(user_email=f"late{i}@example.com", book_id=i, borrowed_ago=days(70), due_in=days(-10))
    response = api.get("/getExpiredBooks/")
    assert len(response.json()) == 3 and 'rel="next"' in response["Link"]


def test_expired_books_bad_paging_is_400(api):
    assert api.get("/getExpiredBooks/", {"limit": "many"}).status_code == 400
