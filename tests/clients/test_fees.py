"""The Fees contract: the reference peer (POST /fees idempotent by id, the balance, the list) and
lending's client of it (the balance fails open: None when the Fees service cannot answer)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from decimal import Decimal

import pytest

from lending.clients import fees
from tools.reference_peers.server import PeerServer, Router

FEE = {"id": "a-1", "patron_ref": "p_one", "loan_id": 7, "kind": "overdue", "amount": "0.75", "currency": "EUR"}


def call(peer, method: str, path: str, body=None) -> tuple[int, object]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        f"{peer.url}{path}", data=data, method=method, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@pytest.fixture
def ref(request) -> str:
    """A patron ref of this test's own: the peer outlives the test."""
    return f"p_{request.node.name[-40:]}"


def test_a_new_fee_is_201_a_repeat_200_and_another_body_409(peers, ref):
    fee = {**FEE, "id": f"{ref}-1", "patron_ref": ref}
    assert call(peers.fees, "POST", "/fees", fee) == (201, fee)
    assert call(peers.fees, "POST", "/fees", fee) == (200, fee)
    status, body = call(peers.fees, "POST", "/fees", {**fee, "amount": "1.00"})
    assert status == 409 and body["fee"] == fee
    assert call(peers.fees, "GET", f"/fees?patron_ref={ref}") == (200, [fee])


@pytest.mark.parametrize(
    "change",
    [
        {"id": ""},
        {"patron_ref": 5},
        {"loan_id": "7"},
        {"loan_id": True},
        {"kind": "late"},
        {"amount": 0.75},
        {"amount": "-1"},
        {"amount": "1.005"},
        {"amount": "NaN"},
        {"currency": "eur"},
    ],
)
def test_a_fee_outside_the_contract_is_400_and_not_recorded(peers, change, ref):
    fee = {**FEE, "id": f"{ref}-bad", "patron_ref": ref, **change}
    status, body = call(peers.fees, "POST", "/fees", fee)
    assert status == 400 and body["error"]
    assert call(peers.fees, "GET", f"/fees?patron_ref={ref}") == (200, [])


def test_a_body_missing_fields_or_not_an_object_is_400(peers):
    assert call(peers.fees, "POST", "/fees", {"id": "x"})[0] == 400
    assert call(peers.fees, "POST", "/fees", ["x"])[0] == 400


def test_the_balance_sums_fees_less_refunds(peers, ref):
    for n, (kind, amount) in enumerate([("overdue", "1.50"), ("lost_item", "20"), ("processing", "5.00")]):
        call(
            peers.fees, "POST", "/fees", {**FEE, "id": f"{ref}-{n}", "patron_ref": ref, "kind": kind, "amount": amount}
        )
    call(peers.fees, "POST", "/fees", {**FEE, "id": f"{ref}-r", "patron_ref": ref, "kind": "refund", "amount": "20"})
    assert call(peers.fees, "GET", f"/patrons/{ref}/balance") == (200, {"balance": "6.50", "currency": "EUR"})
    assert call(peers.fees, "GET", "/patrons/p_nobody/balance") == (200, {"balance": "0.00", "currency": "EUR"})


def test_the_client_reads_the_balance(peers, ref):
    peers.fees.add_fee(ref, "12.50")
    assert fees.balance(ref) == fees.Balance(Decimal("12.50"), "EUR")


def test_the_client_posts_a_fee_idempotently(peers, ref):
    fee = {**FEE, "id": f"{ref}-c", "patron_ref": ref}
    assert fees.post_fee(fee) == 201
    assert fees.post_fee(fee) == 200
    assert fees.post_fee({**fee, "amount": "3.00"}) == 409


@pytest.mark.parametrize("fault", [{"status": 503}, {"status": 500}, {"latency": 0.5}])
def test_the_balance_is_none_when_the_fees_service_cannot_answer(peers, settings, ref, fault):
    settings.PEER_READ_TIMEOUT = 0.2
    peers.fees.add_fee(ref, "12.50")
    peers.fees.faults.status = fault.get("status")
    peers.fees.faults.latency = fault.get("latency", 0.0)
    assert fees.balance(ref) is None


def test_the_balance_is_none_when_nothing_listens(peers, settings, ref):
    from tools.harness.processes import free_port

    settings.FEES_SERVICE_URL = f"http://127.0.0.1:{free_port()}"
    assert fees.balance(ref) is None


class FixedBalancePeer(PeerServer):
    """A Fees service answering every balance with `answer`."""

    def __init__(self, answer: object) -> None:
        self.answer = answer
        super().__init__()

    def register_routes(self, router: Router) -> None:
        router.add("GET", "/patrons/{patron_ref}/balance", lambda request: (200, self.answer))


@pytest.mark.parametrize(
    "answer",
    [[], {"balance": 12.5, "currency": "EUR"}, {"balance": "lots", "currency": "EUR"}, {"balance": "1.00"}],
)
def test_a_balance_outside_the_contract_is_none(peers, settings, ref, answer):
    peer = FixedBalancePeer(answer).start()
    try:
        settings.FEES_SERVICE_URL = peer.url
        assert fees.balance(ref) is None
    finally:
        peer.stop()
