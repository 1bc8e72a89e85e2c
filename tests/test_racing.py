"""The crowd lock of tests/racing.py: a race of more than CROWD requests needs it, and while one test
holds it no other can take it (`make test` runs two workers against one server)."""

from __future__ import annotations

import threading

import pytest

from tests.racing import CROWD, one_crowd_at_a_time, race


def test_a_race_bigger_than_a_crowd_without_the_marker_fails_before_it_starts():
    with pytest.raises(AssertionError, match="many_connections"):
        race([("/lendBook/", {})] * (CROWD + 1))


def test_the_crowd_lock_is_taken_by_one_holder_at_a_time():
    taken = threading.Event()

    def take_it() -> None:
        with one_crowd_at_a_time():
            taken.set()

    with one_crowd_at_a_time():
        other = threading.Thread(target=take_it)
        other.start()
        assert not taken.wait(0.5), "a second holder got the lock while the first held it"
    assert taken.wait(30), "the second holder never got the lock once it was free"
    other.join()
