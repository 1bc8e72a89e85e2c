"""Issue 27 point 4: each scheduler job runs on its own. A job that fails (here: the holds table is
locked by another session past the lock timeout) is logged and counted in
`lending_scheduler_job_failures_total{scheduler_job}`, and the jobs after it still run in the same pass; a
one-shot run (a CronJob) still exits with an error."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone
from prometheus_client import REGISTRY

from lending.models import IdempotencyRecord
from lending.observability import ops_server
from tests.racing import table_locked_elsewhere


def failures(job: str) -> float:
    return REGISTRY.get_sample_value("lending_scheduler_job_failures_total", {"scheduler_job": job}) or 0.0


@pytest.fixture
def holds_table_locked():
    """Another session holds the holds table: every job that reads holds waits 100 ms, then fails."""
    with table_locked_elsewhere("lending_hold"):
        yield


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_failing_jobs_are_counted_and_the_rest_of_the_pass_still_runs(holds_table_locked, log_lines):
    """Expiring ready holds fails half way through the pass; the last job still purges expired keys."""
    IdempotencyRecord.objects.create(key="expired", fingerprint="f", expires_at=timezone.now() - timedelta(hours=1))
    before = {job: failures(job) for job in ("expire_ready_holds", "purge_expired")}

    with pytest.raises(CommandError, match="expire_ready_holds"):
        call_command("send_notices", stdout=io.StringIO())

    assert not IdempotencyRecord.objects.filter(key="expired").exists()
    assert failures("expire_ready_holds") == before["expire_ready_holds"] + 1
    assert failures("purge_expired") == before["purge_expired"]
    failed = [line for line in log_lines() if line["event"] == "scheduled job failed"]
    assert "expire_ready_holds" in {line.get("job") for line in failed}
    assert all(line["level"] == "error" and "LockNotAvailable" in line["exception"] for line in failed)


def test_every_job_has_its_failure_series_from_the_start():
    """A counter that exists at 0 lets `increase()` see the first failure."""
    from lending.management.commands.send_notices import JOBS

    for job in JOBS:
        labels = {"scheduler_job": job.__name__}
        assert REGISTRY.get_sample_value("lending_scheduler_job_failures_total", labels) is not None


def test_a_pass_with_a_failed_job_keeps_liveness_but_counts_as_failed():
    """The loop made progress (a restart would not mend the job), yet the pass is no success."""
    now = [1000.0]
    heartbeat = ops_server.Heartbeat("scheduler_liveness_test", stall_after=60, clock=lambda: now[0])
    now[0] += 61
    assert heartbeat.stalled()

    heartbeat.completed_with_failures()

    assert not heartbeat.stalled()
    labels = {"process": "scheduler_liveness_test"}
    assert REGISTRY.get_sample_value("lending_process_passes_total", {**labels, "outcome": "failed"}) == 1
    assert REGISTRY.get_sample_value("lending_process_passes_total", {**labels, "outcome": "ok"}) is None
    # The stalled alert reads this: the loop is not stalled.
    assert REGISTRY.get_sample_value("lending_process_last_success_timestamp_seconds", labels) > 0
