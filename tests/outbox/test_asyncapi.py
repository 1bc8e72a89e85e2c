"""The AsyncAPI document: the committed `asyncapi.yaml` is the generated one (`make asyncapi`), and the
events the code writes match the schemas it states."""

from __future__ import annotations

import uuid

import jsonschema
import pytest
import yaml

from lending import services
from lending.events import asyncapi, domain_events
from lending.models import OutboxKind, OutboxMessage
from lending.outbox import broker
from tests.processes import ROOT

COMMITTED = ROOT / "asyncapi.yaml"


def test_committed_asyncapi_is_the_generated_one():
    assert COMMITTED.exists(), "asyncapi.yaml is missing: run `make asyncapi`"
    assert COMMITTED.read_text() == asyncapi.render(), "asyncapi.yaml is stale: run `make asyncapi` and commit it"


def test_every_published_type_has_a_channel_and_a_message():
    document = yaml.safe_load(COMMITTED.read_text())
    assert document["asyncapi"].startswith("2.6")
    assert set(document["channels"]) == set(domain_events.all_types())
    for channel in document["channels"].values():
        assert channel["bindings"]["amqp"]["exchange"] == {
            "name": "lending.events",
            "type": "topic",
            "durable": True,
            "autoDelete": False,
            "vhost": "/",
        }


@pytest.mark.django_db
def test_the_events_written_match_their_message_schema(peers, patron, book, settings):
    settings.EVENTS_BROKER_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"  # only written here, never published
    services.loan_lend(user_email=patron, book_id=book["id"])
    waiting = peers.user.add_user(f"waiting-{uuid.uuid4().hex[:8]}@example.com")["email"]
    services.hold_reserve(user_email=waiting, book_id=book["id"])
    services.loan_return(user_email=patron, book_id=book["id"])

    document = yaml.safe_load(COMMITTED.read_text())
    messages = list(OutboxMessage.objects.filter(kind=OutboxKind.EVENT).order_by("id"))
    assert len(messages) == 4  # lent, hold placed, returned, hold ready
    for message in messages:
        event = yaml.safe_load(broker.body(message))
        [ref] = [m["$ref"] for m in [document["channels"][event["type"]]["subscribe"]["message"]]]
        schema = {**document["components"]["messages"][ref.rsplit("/", 1)[1]]["payload"], **document}
        jsonschema.validate(event, schema, cls=jsonschema.Draft7Validator)
