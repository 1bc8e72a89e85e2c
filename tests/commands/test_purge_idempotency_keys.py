from datetime import timedelta
from io import StringIO

import pytest
import time_machine
from django.core.management import call_command

from lending.models import IdempotencyRecord
from tests.conftest import post_json

pytestmark = pytest.mark.django_db


def test_purge_deletes_only_expired_keys_and_an_expired_key_can_be_used_again(api, patron, book, settings):
    settings.IDEMPOTENCY_KEY_TTL_HOURS = 24
    body = {"user_email": patron, "book_id": book["id"]}
    assert post_json(api, "/lendBook/", body, **{"Idempotency-Key": "old"}).status_code == 201
    with time_machine.travel(timedelta(hours=23)):
        post_json(api, "/returnBook/", body, **{"Idempotency-Key": "recent"})

    out = StringIO()
    with time_machine.travel(timedelta(hours=24, minutes=1)):
        call_command("purge_idempotency_keys", stdout=out)

    assert "purged 1 " in out.getvalue()
    assert list(IdempotencyRecord.objects.values_list("key", flat=True)) == ["recent"]
