"""Leases: one holder at a time, handed over when the holder goes quiet."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from training import leases
from training.models import Job, Lease


def test_a_lease_has_one_holder_until_released(db):
    assert leases.acquire("dispatch:local", "a")
    assert not leases.acquire("dispatch:local", "b")
    assert leases.acquire("dispatch:local", "a")  # renewing is taking it again

    leases.release("dispatch:local", "a")

    assert leases.acquire("dispatch:local", "b")
    assert Lease.objects.get().holder == "b"


def test_an_expired_lease_passes_to_the_next_worker_and_its_old_holder_stops(db):
    with leases.held("dispatch:kubernetes") as first:
        assert first is not None
        with leases.held("dispatch:kubernetes") as second:
            assert second is None  # a live holder keeps it
        Lease.objects.update(expires_at=timezone.now() - timedelta(seconds=1))  # the holder went quiet
        with leases.held("dispatch:kubernetes") as third:
            assert third is not None
            assert not first.renew()  # the old holder learns it lost the lease, and stops
            assert third.renew()
    assert Lease.objects.get().holder == ""


def test_leases_of_different_names_are_independent(db):
    assert leases.acquire("dispatch:local", "a")
    assert leases.acquire("dispatch:kubernetes", "b")


@pytest.mark.django_db(transaction=True)
def test_a_dispatcher_keeps_its_claims_however_long_a_launch_takes(alice, catalogue, fraud_request, settings):
    """A launch slowed by a failing API (retries, timeouts) must not outlive its claim: another
    dispatcher would take the job over and launch it again."""
    from django.db import connection

    from training import images, services

    if connection.vendor != "postgresql":
        pytest.skip("several dispatchers, and the keeper thread, run on PostgreSQL")
    settings.RAILYARD = {**settings.RAILYARD, "LEASE_SECONDS": 2}
    images.sync(images.DEFAULT, catalogue)
    run, _ = services.submit(alice, fraud_request)
    claimed = leases.claim_queued("local", "slow-dispatcher", 10)
    assert [r.pk for _, r in claimed] == [run.pk]

    with leases.kept("slow-dispatcher"):
        time.sleep(5)  # two and a half lease periods of a launch that does not answer
        assert leases.claim_queued("local", "other-dispatcher", 10) == []  # still held
        job = Job.objects.get()
        assert job.lease_holder == "slow-dispatcher"
        assert job.lease_expires_at > timezone.now()
    time.sleep(2.5)  # the dispatcher is gone: its claim expires and passes on
    assert [r.pk for _, r in leases.claim_queued("local", "other-dispatcher", 10)] == [run.pk]
