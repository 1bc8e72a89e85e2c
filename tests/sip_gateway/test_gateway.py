"""Issue 24: the SIP2 gateway end to end — a kiosk (the tests' own client) talking to the gateway
in-process, which calls a live lending API (API keys required) that calls the reference peers.
Every reply is also decoded by an independent strict decoder (pysip2)."""

from __future__ import annotations

import uuid
from datetime import timedelta
from zoneinfo import ZoneInfo

import pysip2
import pytest
from django.conf import settings
from django.utils import timezone

from lending.blocks import PatronBlock
from lending.models import Event, Hold, HoldStatus, Loan
from sip_gateway import codec
from tests.sip_gateway.client import Answer, SipClient
from tests.sip_gateway.conftest import PASSWORD

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

BLANK = " " * 18


def kiosk_zone() -> ZoneInfo:
    return ZoneInfo(settings.LIBRARY_TIME_ZONE)


def strict(answer: Answer):
    """The reply as pysip2 decodes it (strict: fixed widths, required fields, checksum); raises if
    it is not valid SIP2 2.00."""
    return pysip2.decode_message(answer.raw.rstrip(b"\n"), encoding="utf-8").message


def now(delta: timedelta = timedelta()) -> str:
    """A SIP date in the library's time zone, `delta` from now."""
    return codec.sip_date(timezone.now() + delta, kiosk_zone())


def new_patron(peers, active: bool = True) -> dict:
    return peers.user.add_user(f"sip-{uuid.uuid4().hex[:10]}@example.com", active)


def block(patron: dict, reason: str) -> None:
    PatronBlock.objects.create(user_email=patron["email"], reason=reason, blocks=["borrow"], created_at=timezone.now())


def new_item(peers, copies: int = 1) -> tuple[int, list[str]]:
    book = peers.book.add_book("Kiosk book", "Author", copies)
    return book["id"], [item["barcode"] for item in book["items"]]


def checkout(client: SipClient, card: str, item: str, *, when: str | None = None, no_block: str = "N", **kw) -> Answer:
    return client.ask(f"11N{no_block}{when or now()}{BLANK}AOtest-library|AA{card}|AB{item}|AC|", **kw)


def checkin(client: SipClient, item: str, *, when: str | None = None, returned: str | None = None, no_block="N"):
    return client.ask(f"09{no_block}{when or now()}{returned or now()}APdesk|AOtest-library|AB{item}|AC|")


# --- Status and login -------------------------------------------------------------------------------
def test_sc_status_says_what_is_supported(kiosk):
    answer = kiosk.ask("9900302.00")
    assert answer.checksum_ok()
    status = strict(answer)
    assert isinstance(status, pysip2.ACSStatusResponse)
    assert status.online_status == "Y" and status.protocol_version == "2.00"
    assert status.supported_messages == "YYYNYYYYYNYNNNYN"
    assert status.institution_id == "test-library"


def test_a_wrong_password_does_not_log_in_and_gets_no_patron_data(running_gateway, kiosk_account, peers):
    patron = new_patron(peers)
    with running_gateway.client() as client:
        assert client.login(kiosk_account.login, "wrong").text.startswith("940")
        answer = client.ask(f"23000{now()}AOtest-library|AA{patron['barcode']}|AD|")
        reply = strict(answer)
        assert reply.valid_patron == "N" and reply.personal_name == ""
        assert patron["email"] not in answer.text
        assert reply.screen_message == ("This kiosk is not logged in.",)
        assert client.login(kiosk_account.login, PASSWORD).text.startswith("941")
        assert strict(client.ask(f"23000{now()}AOtest-library|AA{patron['barcode']}|AD|")).valid_patron == "Y"


def test_a_connection_guessing_passwords_is_closed_after_three_failures(running_gateway, kiosk_account):
    with running_gateway.client() as client:
        assert client.login(kiosk_account.login, "guess-1").text.startswith("940")
        assert client.login(kiosk_account.login, "guess-2").text.startswith("940")
        assert client.login(kiosk_account.login, "guess-3").text.startswith("940")
        assert client.closed_by_peer()


# --- Patron status and information ------------------------------------------------------------------
def test_patron_status_of_a_patron_in_good_standing(kiosk, peers):
    patron = new_patron(peers)
    answer = kiosk.ask(f"23000{now()}AOtest-library|AA{patron['barcode']}|AD|")
    reply = strict(answer)
    assert isinstance(reply, pysip2.PatronStatusResponse)
    assert reply.patron_status == " " * 14
    # Greeted by name (the User service's), never by email: a kiosk's screen is seen by others.
    assert (reply.valid_patron, reply.personal_name) == ("Y", patron["name"])
    assert patron["email"] not in answer.text
    assert reply.patron_identifier == patron["barcode"]


def test_a_blocked_patron_is_denied_with_words_they_understand(kiosk, peers):
    patron = new_patron(peers)
    block(patron, "Unpaid damage (staff note)")
    reply = strict(kiosk.ask(f"23000{now()}AOtest-library|AA{patron['barcode']}|AD|"))
    assert reply.patron_status[0] == "Y"  # charge privileges denied
    assert reply.screen_message == ("Your account is blocked. Please see the library staff.",)
    _, [item] = new_item(peers)
    refused = strict(checkout(kiosk, patron["barcode"], item))
    assert (refused.ok, refused.desensitize) == ("0", "N")
    assert refused.screen_message == ("Your account is blocked. Please see the library staff.",)
    assert "Unpaid" not in "".join(refused.screen_message)  # staff's reason stays with staff
    assert not Loan.objects.filter(item_barcode=item).exists()


def test_an_unknown_card(kiosk):
    reply = strict(kiosk.ask(f"63000{now()}{' ' * 10}AOtest-library|AAnobody-holds-this|AD|"))
    assert isinstance(reply, pysip2.PatronInformationResponse)
    assert reply.valid_patron == "N"
    assert reply.screen_message == ("This library card is not recognised.",)


def test_patron_information_counts_and_lists_charged_items(kiosk, peers):
    patron = new_patron(peers)
    items = [new_item(peers)[1][0], new_item(peers)[1][0]]  # two titles: one copy of a title at a time
    for item in items:
        assert strict(checkout(kiosk, patron["barcode"], item)).ok == "1"
    summary = "  Y       "  # charged items
    reply = strict(kiosk.ask(f"63000{now()}{summary}AOtest-library|AA{patron['barcode']}|BP1|BQ5|"))
    assert reply.charged_items_count == "0002"
    assert sorted(reply.charged_items) == sorted(items)
    assert (reply.overdue_items_count, reply.hold_items_count) == ("0000", "0000")
    one = strict(kiosk.ask(f"63000{now()}{summary}AOtest-library|AA{patron['barcode']}|BP2|BQ2|"))
    assert len(one.charged_items) == 1


# --- Check-out, check-in, renew, item information ---------------------------------------------------
def test_checkout_then_item_information_then_renew_then_checkin(kiosk, peers):
    patron = new_patron(peers)
    _, [item] = new_item(peers)
    lent = strict(checkout(kiosk, patron["barcode"], item))
    assert isinstance(lent, pysip2.CheckoutResponse)
    assert (lent.ok, lent.desensitize, lent.title_identifier) == ("1", "Y", "Kiosk book")
    loan = Loan.objects.get(item_barcode=item)
    assert lent.due_date == codec.sip_date(loan.date_due, kiosk_zone())

    info = strict(kiosk.ask(f"17{now()}AOtest-library|AB{item}|"))
    assert isinstance(info, pysip2.ItemInformationResponse)
    assert (info.circulation_status, info.title_identifier) == ("04", "Kiosk book")
    assert patron["email"] not in info.__repr__()

    renewed = strict(kiosk.ask(f"29NN{now()}{BLANK}AOtest-library|AA{patron['barcode']}|AB{item}|"))
    assert isinstance(renewed, pysip2.RenewResponse)
    assert (renewed.ok, renewed.renewal_ok) == ("1", "Y")
    loan.refresh_from_db()
    assert loan.renewals == 1

    returned = strict(checkin(kiosk, item))
    assert isinstance(returned, pysip2.CheckinResponse)
    assert (returned.ok, returned.alert, returned.resensitize) == ("1", "N", "Y")
    loan.refresh_from_db()
    assert loan.date_returned is not None
    assert strict(kiosk.ask(f"17{now()}AOtest-library|AB{item}|")).circulation_status == "03"


def test_an_item_on_hold_for_someone_else(kiosk, peers):
    holder, other = new_patron(peers), new_patron(peers)
    book_id, [item] = new_item(peers)
    assert strict(checkout(kiosk, other["barcode"], item)).ok == "1"
    hold = Hold.objects.create(
        user_email=holder["email"], book_id=book_id, status=HoldStatus.WAITING, date_reserved=timezone.now()
    )
    answer = checkin(kiosk, item)
    routed = strict(answer)
    assert (routed.ok, routed.alert, routed.resensitize) == ("1", "Y", "N")
    assert (answer.field("CV"), answer.field("CY")) == ("02", f"hold {hold.pk}")
    assert holder["email"] not in answer.text and holder["barcode"] not in answer.text
    assert strict(kiosk.ask(f"17{now()}AOtest-library|AB{item}|")).circulation_status == "08"
    refused = strict(checkout(kiosk, new_patron(peers)["barcode"], item))
    assert refused.ok == "0"
    assert refused.screen_message == ("This item is on hold for another patron.",)


def test_an_unknown_item(kiosk, peers):
    patron = new_patron(peers)
    refused = strict(checkout(kiosk, patron["barcode"], "NO-SUCH-ITEM"))
    assert refused.ok == "0"
    assert refused.screen_message == ("This item is not recognised. Please see the library staff.",)
    info = strict(kiosk.ask(f"17{now()}AOtest-library|ABNO-SUCH-ITEM|"))
    assert (info.circulation_status, info.title_identifier) == ("01", "")
    assert strict(checkin(kiosk, "NO-SUCH-ITEM")).ok == "0"


def test_renewing_a_copy_that_is_not_the_patrons_is_refused(kiosk, peers):
    holder, other = new_patron(peers), new_patron(peers)
    _, [item] = new_item(peers)
    assert strict(checkout(kiosk, holder["barcode"], item)).ok == "1"
    answer = kiosk.ask(f"29NN{now()}{BLANK}AOtest-library|AA{other['barcode']}|AB{item}|")
    refused = strict(answer)
    assert (refused.ok, refused.screen_message) == ("0", ("This item is not on your account.",))
    assert holder["email"] not in answer.text
    assert Loan.objects.get(item_barcode=item).renewals == 0


def test_end_patron_session(kiosk):
    reply = strict(kiosk.ask(f"35{now()}AOtest-library|AA2100000001|"))
    assert isinstance(reply, pysip2.EndSessionResponse) and reply.end_session == "Y"


# --- Error detection ---------------------------------------------------------------------------------
def test_a_bad_checksum_gets_96_and_changes_nothing(kiosk, peers):
    patron = new_patron(peers)
    _, [item] = new_item(peers)
    good = kiosk.frame(f"11NN{now()}{BLANK}AOtest-library|AA{patron['barcode']}|AB{item}|")
    kiosk.send_raw(good[:-5] + b"0000\r")  # the same message with a wrong checksum
    assert kiosk.read().text == "96AZFEF6"
    assert not Loan.objects.filter(item_barcode=item).exists()
    assert strict(checkout(kiosk, patron["barcode"], item)).ok == "1"  # the connection goes on


def test_97_resends_the_last_answer(kiosk):
    first = kiosk.ask(f"17{now()}AOtest-library|ABNO-SUCH-ITEM|")
    assert kiosk.ask("97").raw == first.raw
    assert kiosk.ask("97", checksum=False).raw == first.raw


def test_a_request_repeating_ay_and_az_gets_the_same_answer_without_running_twice(kiosk, peers):
    patron = new_patron(peers)
    _, [item] = new_item(peers)
    assert strict(checkout(kiosk, patron["barcode"], item)).ok == "1"
    # Blank dates: no idempotency key, so only AY and AZ tell the resend from a second scan.
    framed = kiosk.frame(f"09N{BLANK}{BLANK}APdesk|AOtest-library|AB{item}|")
    kiosk.send_raw(framed)
    first = kiosk.read()
    kiosk.send_raw(framed)
    assert kiosk.read().raw == first.raw
    assert strict(first).screen_message == ()  # run once: it returned the loan ...
    assert Event.objects.filter(kind="returned", loan__item_barcode=item).count() == 1
    again = strict(checkin(kiosk, item))  # ... and a new scan (another AY) runs again
    assert again.screen_message == ("This item was not checked out.",)


def test_a_checkout_resent_after_a_reconnect_lends_once(running_gateway, kiosk_account, peers):
    patron = new_patron(peers)
    _, [item] = new_item(peers)
    message = f"11NN{now()}{BLANK}AOtest-library|AA{patron['barcode']}|AB{item}|AC|"
    with running_gateway.client() as first:
        first.login(kiosk_account.login, PASSWORD)
        first.send_raw(first.frame(message, sequence=4))
        first.read()  # the kiosk never saw this answer (its connection dropped)
    with running_gateway.client() as second:
        second.login(kiosk_account.login, PASSWORD)
        replayed = strict(second.ask(message, sequence=0))
    assert (replayed.ok, replayed.title_identifier) == ("1", "Kiosk book")
    assert Loan.objects.filter(item_barcode=item).count() == 1
    assert Event.objects.filter(kind="lent", loan__item_barcode=item).count() == 1


def test_a_checkin_resent_after_a_reconnect_returns_once(running_gateway, kiosk_account, peers):
    patron = new_patron(peers)
    _, [item] = new_item(peers)
    with running_gateway.client() as client:
        client.login(kiosk_account.login, PASSWORD)
        assert strict(checkout(client, patron["barcode"], item)).ok == "1"
        when = now()
        first = strict(checkin(client, item, when=when, returned=when))
    with running_gateway.client() as client:
        client.login(kiosk_account.login, PASSWORD)
        again = strict(checkin(client, item, when=when, returned=when))
    assert first.title_identifier == again.title_identifier == "Kiosk book"
    assert again.screen_message == ()  # the first answer, not "was not checked out"
    assert Event.objects.filter(kind="returned", loan__item_barcode=item).count() == 1


# --- Framing and leniency ----------------------------------------------------------------------------
def test_crlf_requests_get_crlf_answers_and_a_stray_lf_is_ignored(running_gateway, kiosk_account):
    with running_gateway.client(crlf=True) as client:
        assert client.login(kiosk_account.login, PASSWORD).raw.endswith(b"\r\n")
        client.send_raw(b"\n" + client.frame("9900302.00"))
        assert client.read().raw.endswith(b"\r\n")


def test_two_messages_in_one_write_and_one_message_in_many(kiosk):
    both = kiosk.frame("9900302.00") + kiosk.frame(f"17{now()}AOtest-library|ABX|")
    kiosk.send_raw(both)
    assert kiosk.read().code == "98"
    assert kiosk.read().code == "18"
    for byte in kiosk.frame("9900302.00"):
        kiosk.send_raw(bytes([byte]))
    assert kiosk.read().code == "98"


def test_lenient_parsing_an_extra_fixed_field_and_unknown_or_empty_fields(kiosk, peers):
    _, [item] = new_item(peers)
    info = strict(kiosk.ask(f"17XX{now()}AOtest-library|AB{item}|ZQunknown||AC|"))
    assert (info.item_identifier, info.circulation_status) == (item, "03")


def test_what_cannot_be_understood_gets_96_and_the_connection_stays(kiosk):
    kiosk.send_raw(b"hello\r")
    assert kiosk.read().text == "96"
    assert kiosk.ask("45" + now() + "AOx|").text.startswith("96")  # no such message in SIP2
    assert kiosk.ask("9900302.00").code == "98"


def test_an_oversize_message_gets_96_and_the_next_one_is_answered(kiosk):
    kiosk.send_raw(b"17" + b"X" * 5000)
    assert kiosk.read().text == "96"
    kiosk.send_raw(b"Y" * 3000 + b"\r")  # the rest of the oversize message: dropped
    assert kiosk.ask("9900302.00").code == "98"


def test_a_kiosk_stalled_mid_message_does_not_stall_the_others(running_gateway, kiosk_account, peers):
    patron = new_patron(peers)
    _, [item] = new_item(peers)
    late = new_patron(peers)
    with running_gateway.client() as stalled, running_gateway.client() as other:
        stalled.login(kiosk_account.login, PASSWORD)
        stalled.send_raw(b"11NN" + now().encode())  # half a message, then nothing
        other.login(kiosk_account.login, PASSWORD)
        assert strict(checkout(other, patron["barcode"], item)).ok == "1"
        stalled.send_raw(f"{BLANK}AOtest-library|AA{late['barcode']}|AB{item}|\r".encode())
        assert strict(stalled.read()).ok == "0"  # completed later: answered (the copy is out)


# --- Timeouts ------------------------------------------------------------------------------------------
@pytest.fixture
def impatient_gateway(short_lived_connections, live_server, peers, api_keys_required):
    from tests.sip_gateway.conftest import RunningGateway

    running = RunningGateway(live_server.url, login_timeout=0.5, idle_timeout=1.0)
    yield running
    running.stop()


def test_a_connection_that_does_not_log_in_is_closed(impatient_gateway):
    with impatient_gateway.client() as client:
        assert client.ask("9900302.00").code == "98"  # status before login is fine, but does not count
        assert client.closed_by_peer()


def test_an_idle_connection_is_closed(impatient_gateway, kiosk_account):
    with impatient_gateway.client() as client:
        assert client.login(kiosk_account.login, PASSWORD).text.startswith("941")
        assert client.closed_by_peer()


# --- No-block (offline) transactions -----------------------------------------------------------------
def test_no_block_transactions_apply_only_for_accounts_allowed(running_gateway, kiosk_account, no_block_account, peers):
    patron = new_patron(peers)
    block(patron, "Staff block")
    _, [item] = new_item(peers)
    earlier = now(-timedelta(minutes=30))
    with running_gateway.client() as client:
        client.login(kiosk_account.login, PASSWORD)
        assert strict(client.ask("9900302.00")).offline_ok == "N"
        assert strict(checkout(client, patron["barcode"], item, when=earlier, no_block="Y")).ok == "0"
    with running_gateway.client() as client:
        client.login(no_block_account.login, PASSWORD)
        assert strict(client.ask("9900302.00")).offline_ok == "Y"
        assert strict(checkout(client, patron["barcode"], item, when=earlier, no_block="Y")).ok == "1"
    loan = Loan.objects.get(item_barcode=item)
    assert Event.objects.get(kind="lent", loan=loan).reason.startswith("SIP no-block, kiosk transaction date ")
    # The book drop of an offline kiosk, replayed two days later: back-dated before today.
    Loan.objects.filter(pk=loan.pk).update(date_borrowed=timezone.now() - timedelta(days=3))
    dropped = now(-timedelta(days=2))
    with running_gateway.client() as client:
        client.login(kiosk_account.login, PASSWORD)
        assert strict(checkin(client, item, when=dropped, returned=dropped, no_block="Y")).ok == "0"
    with running_gateway.client() as client:
        client.login(no_block_account.login, PASSWORD)
        assert strict(checkin(client, item, when=dropped, returned=dropped, no_block="Y")).ok == "1"
    loan.refresh_from_db()
    assert abs(loan.date_returned - (timezone.now() - timedelta(days=2))) < timedelta(seconds=5)
    assert Event.objects.get(kind="returned", loan=loan).reason.startswith("SIP no-block")


# --- Observability -----------------------------------------------------------------------------------
def sample(name: str, **labels: str) -> float:
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_one_log_line_per_message_without_passwords_and_the_metrics(running_gateway, kiosk_account, peers, log_lines):
    patron = new_patron(peers)
    answered_before = sample("sip_messages_total", message="23")
    errors_before = sample("sip_message_errors_total", message="17")
    with running_gateway.client() as client:
        client.login(kiosk_account.login, PASSWORD)
        assert sample("sip_sessions_open") >= 1  # answered: its session is open
        client.ask(f"23000{now()}AOtest-library|AA{patron['barcode']}|ADsecret-pin|")
        client.send_raw(client.frame(f"17{now()}AOtest-library|ABX|")[:-5] + b"0000\r")  # a bad checksum
        assert client.read().text == "96AZFEF6"
    lines = [line for line in log_lines() if line.get("event") == "sip_message"]
    assert [(line["message"], line["outcome"]) for line in lines] == [
        ("93", "ok"),
        ("23", "ok"),
        ("17", "bad_checksum"),
    ]
    assert all(line["account"] == kiosk_account.login and len(line["request_id"]) == 32 for line in lines)
    everything = repr(log_lines())
    assert PASSWORD not in everything and "secret-pin" not in everything and patron["barcode"] not in everything
    assert sample("sip_messages_total", message="23") == answered_before + 1
    assert sample("sip_message_errors_total", message="17") == errors_before + 1


def test_a_kiosk_with_renewal_policy_renews_the_patrons_own_copy_scanned_again(kiosk, peers):
    patron, other = new_patron(peers), new_patron(peers)
    _, [item] = new_item(peers)
    assert strict(checkout(kiosk, patron["barcode"], item)).ok == "1"
    scanned_again = f"11YN{now(timedelta(seconds=1))}{BLANK}AOtest-library|AA{patron['barcode']}|AB{item}|"
    renewed = strict(kiosk.ask(scanned_again))
    assert (renewed.ok, renewed.renewal_ok) == ("1", "Y")
    assert Loan.objects.get(item_barcode=item).renewals == 1
    # Someone else's copy is not renewed for them: the refusal of the check-out stands.
    refused = strict(kiosk.ask(f"11YN{now()}{BLANK}AOtest-library|AA{other['barcode']}|AB{item}|"))
    assert (refused.ok, refused.screen_message) == ("0", ("This item is already checked out.",))


def test_an_unreachable_api_is_a_refusal_in_words_and_an_error_in_the_metrics(kiosk_account, peers, api_keys_required):
    from tests.sip_gateway.conftest import RunningGateway
    from tools.harness.processes import free_port

    patron = new_patron(peers)
    errors_before = sample("sip_message_errors_total", message="11")
    running = RunningGateway(f"http://127.0.0.1:{free_port()}")  # nothing listens there
    try:
        with running.client() as client:
            assert client.login(kiosk_account.login, PASSWORD).text.startswith("941")
            refused = strict(checkout(client, patron["barcode"], "3900000101"))
    finally:
        running.stop()
    assert refused.ok == "0"
    assert refused.screen_message == ("The library system is unavailable. Please try again or see the library staff.",)
    assert sample("sip_message_errors_total", message="11") == errors_before + 1


@pytest.mark.parametrize(
    ("request_text", "answer_type"),
    [
        ("01N{now}AOtest-library|ALcard retained|AA2100000001|", pysip2.PatronStatusResponse),
        ("15+{now}AOtest-library|AA2100000001|ABX|", pysip2.HoldResponse),
        ("19{now}AOtest-library|ABX|CHx|", pysip2.ItemStatusUpdateResponse),
        ("25{now}AOtest-library|AA2100000001|", pysip2.PatronEnableResponse),
        ("37{now}0100USDAOtest-library|AA2100000001|BV1.00|", pysip2.FeePaidResponse),
        ("65{now}AOtest-library|AA2100000001|", pysip2.RenewAllResponse),
    ],
)
def test_messages_understood_but_not_supported_are_refused_in_their_own_answer(kiosk, request_text, answer_type):
    reply = strict(kiosk.ask(request_text.format(now=now())))
    assert isinstance(reply, answer_type)
    assert reply.screen_message == ("This cannot be done at this kiosk. Please see the library staff.",)


def test_a_cancelled_checkout_returns_the_patrons_own_copy_only(kiosk, peers):
    patron, other = new_patron(peers), new_patron(peers)
    _, [item] = new_item(peers)
    assert strict(checkout(kiosk, patron["barcode"], item)).ok == "1"
    cancel = f"11NN{now(timedelta(seconds=1))}{BLANK}AOtest-library|AA{{card}}|AB{item}|BIY|"
    refused = strict(kiosk.ask(cancel.format(card=other["barcode"])))
    assert (refused.ok, refused.screen_message) == ("0", ("This item is not on your account.",))
    assert Loan.objects.get(item_barcode=item).date_returned is None
    cancelled = strict(kiosk.ask(cancel.format(card=patron["barcode"])))
    assert (cancelled.ok, cancelled.desensitize) == ("1", "N")
    assert Loan.objects.get(item_barcode=item).date_returned is not None


def test_an_answer_the_gateway_cannot_read_costs_a_96_not_the_connection(kiosk, peers, monkeypatch):
    from sip_gateway.api_client import Answer as ApiAnswer
    from sip_gateway.api_client import LendingApi

    monkeypatch.setattr(LendingApi, "item", lambda *args: ApiAnswer(200, {"holds_waiting": "not a number"}))
    assert kiosk.ask(f"17{now()}AOtest-library|ABX|").text.startswith("96")
    assert kiosk.ask("9900302.00").code == "98"


def test_many_kiosks_at_once(running_gateway, kiosk_account, peers):
    from concurrent.futures import ThreadPoolExecutor

    pairs = [(new_patron(peers), new_item(peers)[1][0]) for _ in range(20)]

    def lend_and_return(pair) -> tuple[str, str]:
        patron, item = pair
        with running_gateway.client() as client:
            client.login(kiosk_account.login, PASSWORD)
            lent = strict(checkout(client, patron["barcode"], item))
            returned = strict(checkin(client, item))
        return lent.ok, returned.ok

    with ThreadPoolExecutor(max_workers=20) as pool:
        outcomes = list(pool.map(lend_and_return, pairs))
    assert outcomes == [("1", "1")] * 20
    assert Event.objects.filter(kind="lent", loan__item_barcode__in=[item for _, item in pairs]).count() == 20
    assert not Loan.objects.open().filter(item_barcode__in=[item for _, item in pairs]).exists()
