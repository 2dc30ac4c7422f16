"""Leases: a named piece of work held by one worker at a time, handed over when its holder goes quiet.

A lease is a row claimed by a conditional update (free, expired, or already ours), so it works the
same on PostgreSQL and SQLite and holds no transaction open while the holder does slow I/O. A
holder renews it as it goes; a holder that dies simply lets it expire.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from training.models import Lease

#: Renewed before every launch. A launch that outlasts it (the cluster's retries) is still safe:
#: a second launcher of the same attempt adopts its job. A killed holder blocks others this long.
DEFAULT_TTL = timedelta(seconds=30)


def new_holder() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def acquire(name: str, holder: str, ttl: timedelta = DEFAULT_TTL) -> bool:
    """Take or renew the lease; False while another live holder has it."""
    now = timezone.now()
    claimable = Q(holder=holder) | Q(holder="") | Q(expires_at__lt=now)
    if Lease.objects.filter(claimable, name=name).update(holder=holder, expires_at=now + ttl):
        return True
    try:
        with transaction.atomic():
            Lease.objects.create(name=name, holder=holder, expires_at=now + ttl)
        return True
    except IntegrityError:
        return False  # it exists, and another holder has it


def release(name: str, holder: str) -> None:
    Lease.objects.filter(name=name, holder=holder).update(holder="", expires_at=timezone.now())


@contextmanager
def held(name: str, ttl: timedelta = DEFAULT_TTL) -> Iterator[Renewal | None]:
    """The lease while the block runs (a `Renewal` to call between steps), or None if someone else has it."""
    holder = new_holder()
    if not acquire(name, holder, ttl):
        yield None
        return
    try:
        yield Renewal(name, holder, ttl)
    finally:
        release(name, holder)


class Renewal:
    def __init__(self, name: str, holder: str, ttl: timedelta):
        self.name, self.holder, self.ttl = name, holder, ttl

    def renew(self) -> bool:
        """Extend the lease; False if it expired and another holder took it (stop, then)."""
        return bool(
            Lease.objects.filter(name=self.name, holder=self.holder).update(expires_at=timezone.now() + self.ttl)
        )
