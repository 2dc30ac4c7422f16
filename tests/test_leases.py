"""Leases: one holder at a time, handed over when the holder goes quiet."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from training import leases
from training.models import Lease


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
