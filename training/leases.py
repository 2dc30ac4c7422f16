"""Leases: work held by one worker at a time, handed over when its holder goes quiet.

- A named lease (dispatching for an executor) is a row claimed by a conditional update (free,
  expired, or already ours), so it works the same on PostgreSQL and SQLite and holds no
  transaction open while the holder does slow I/O.
- A job's lease (its `lease_holder` and `lease_expires_at`) says which worker launches it, or
  observes and finishes it while it is in flight. Workers take free or expired job leases with
  `SELECT … FOR UPDATE SKIP LOCKED` on PostgreSQL, so several replicas share the jobs without
  waiting on each other; SQLite has no row locks, so it runs one worker.

A holder renews what it holds as it goes (a dispatcher from a keeper thread, `kept`, so that a
launch slowed by a failing API never outlives its claim); a holder that dies simply lets it
expire (`RAILYARD_LEASE_SECONDS`).
"""

from __future__ import annotations

import os
import socket
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

from django.db import IntegrityError, connection, transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from railyard_trainer.vocabulary import JOB_ACTIVE, JobStatus, RunStatus
from training import states
from training.conf import railyard
from training.models import Job, JobRun, Lease, Run

_process_holder: tuple[int, str] | None = None


def new_holder() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def process_holder() -> str:
    """This process's name as a holder of job leases (a forked child gets a name of its own)."""
    global _process_holder
    if _process_holder is None or _process_holder[0] != os.getpid():
        _process_holder = (os.getpid(), new_holder())
    return _process_holder[1]


def acquire(name: str, holder: str, ttl: timedelta | None = None) -> bool:
    """Take or renew the lease; False while another live holder has it."""
    now = timezone.now()
    expires = now + (ttl or railyard.lease_ttl)
    claimable = Q(holder=holder) | Q(holder="") | Q(expires_at__lt=now)
    if Lease.objects.filter(claimable, name=name).update(holder=holder, expires_at=expires):
        return True
    try:
        with transaction.atomic():
            Lease.objects.create(name=name, holder=holder, expires_at=expires)
        return True
    except IntegrityError:
        return False  # it exists, and another holder has it


def release(name: str, holder: str) -> None:
    Lease.objects.filter(name=name, holder=holder).update(holder="", expires_at=timezone.now())


@contextmanager
def held(name: str, ttl: timedelta | None = None) -> Iterator[Renewal | None]:
    """The lease while the block runs (a `Renewal` to call between steps), or None if someone else has it."""
    holder = new_holder()
    if not acquire(name, holder, ttl):
        yield None
        return
    try:
        yield Renewal(name, holder, ttl or railyard.lease_ttl)
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


# -- job leases -----------------------------------------------------------------------------------


def _free(now: datetime) -> Q:
    return Q(lease_holder="") | Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lt=now)


def take_job(job: Job, holder: str) -> bool:
    """Hold a job (free, expired, or ours already) for the next lease period; False if another holds it."""
    now = timezone.now()
    taken = (
        Job.objects.filter(pk=job.pk, status=job.status)
        .filter(_free(now) | Q(lease_holder=holder))
        .update(lease_holder=holder, lease_expires_at=now + railyard.lease_ttl)
    )
    if taken:
        job.lease_holder, job.lease_expires_at = holder, now + railyard.lease_ttl
    return bool(taken)


def claim_queued(executor: str, holder: str, most: int) -> list[tuple[Job, Run]]:
    """Up to `most` queued runs, oldest first, each with the job of its attempt (made if need be)
    held for launching. Runs another dispatcher is claiming or launching are skipped, not waited for."""
    now = timezone.now()
    launching = JobRun.objects.filter(
        run=OuterRef("pk"), attempt=OuterRef("attempt"), job__status=JobStatus.PENDING, job__lease_expires_at__gt=now
    )
    with transaction.atomic():
        runs = list(
            Run.objects.filter(status=RunStatus.QUEUED, executor=executor)
            .filter(~Exists(launching))
            .with_related()
            .order_by("created_at", "id")
            .select_for_update(skip_locked=True, of=("self",))[:most]
        )
        jobs = states.open_jobs(runs)
        pending = [jobs[run.pk].pk for run in runs if jobs[run.pk].status == JobStatus.PENDING]
        expires = now + railyard.lease_ttl
        Job.objects.filter(pk__in=pending, status=JobStatus.PENDING).filter(_free(now)).update(
            lease_holder=holder, lease_expires_at=expires
        )
        held = set(Job.objects.filter(pk__in=pending, lease_holder=holder).values_list("pk", flat=True))
    claimed = []
    for run in runs:
        job = jobs[run.pk]
        if job.pk in held:
            job.lease_holder, job.lease_expires_at = holder, expires
            claimed.append((job, run))
    return claimed


#: What observing a job needs of it; the rest is read only when it is finished.
OBSERVED_JOB_FIELDS = (
    "id",
    "executor",
    "attempt",
    "compute_resource",
    "status",
    "message",
    "handle",
    "launched_at",
    "started_at",
    "lease_holder",
)


def claim_in_flight(executor: str, holder: str, most: int) -> list[Job]:
    """The executor's in-flight jobs this holder observes: those it held, renewed, and free or expired
    ones taken over (at most `most` in all), oldest first."""
    now = timezone.now()
    expires = now + railyard.lease_ttl
    in_flight = Job.objects.filter(executor=executor).in_flight()
    # Renewed once half the lease has passed, not on every pass: thousands of rows rewritten every
    # couple of seconds would cost more than the pass itself.
    in_flight.filter(lease_holder=holder, lease_expires_at__lt=now + railyard.lease_ttl / 2).update(
        lease_expires_at=expires
    )
    with transaction.atomic():
        free = in_flight.filter(_free(now)).order_by("pk").select_for_update(skip_locked=True)
        wanted = list(free.values_list("pk", flat=True)[:most])
        # Conditional again: without row locks (SQLite) another worker may have taken some meanwhile.
        Job.objects.filter(pk__in=wanted).filter(_free(now)).update(lease_holder=holder, lease_expires_at=expires)
    mine = in_flight.filter(lease_holder=holder).only(*OBSERVED_JOB_FIELDS).order_by("pk")
    return list(mine[:most])


def release_jobs(holder: str) -> int:
    """Hand every job this holder has over at once (a worker stopping cleanly)."""
    return Job.objects.filter(lease_holder=holder, status__in=JOB_ACTIVE).update(lease_holder="", lease_expires_at=None)


@contextmanager
def kept(holder: str) -> Iterator[None]:
    """While the block runs, renew the leases of the pending jobs `holder` holds every third of a
    lease period, from a thread of its own: the jobs a dispatcher has claimed, or started and not yet
    recorded, stay its own however slowly the executor answers, and expire if the process dies.

    Rows another transaction has locked are skipped rather than waited for. SQLite runs one worker
    and has no row locks: there the block runs as it is.
    """
    if connection.vendor == "sqlite":
        yield
        return
    stop = threading.Event()

    def renew() -> None:
        try:
            while not stop.wait(railyard.lease_ttl.total_seconds() / 3):
                mine = Job.objects.filter(lease_holder=holder, status=JobStatus.PENDING).select_for_update(
                    skip_locked=True
                )
                with transaction.atomic():
                    Job.objects.filter(pk__in=list(mine.values_list("pk", flat=True))).update(
                        lease_expires_at=timezone.now() + railyard.lease_ttl
                    )
        finally:
            connection.close()  # this thread's own connection

    keeper = threading.Thread(target=renew, name=f"lease-keeper {holder}", daemon=True)
    keeper.start()
    try:
        yield
    finally:
        stop.set()
        keeper.join()
