"""The run and job state machines: allowed moves, conditional updates, events, and races between workers."""

from __future__ import annotations

import threading

import pytest
from django.db import IntegrityError, connection

from training import services, states
from training.models import Job, JobRun, Run, RunEvent
from training.states import Cause, JobStatus, RunStatus, TransitionNotAllowed

pytestmark = pytest.mark.usefixtures("workflows")


@pytest.fixture
def run(alice, fraud_request) -> Run:
    return services.submit(alice, fraud_request)[0]


def launched(run: Run, handle: dict | None = None) -> Job:
    job = states.open_job(run)
    assert states.job_launched(job, handle or {})
    run.refresh_from_db()
    return job


def test_it_knows_which_statuses_are_terminal():
    assert {s for s in RunStatus if s.is_terminal} == {"succeeded", "failed", "cancelled"}
    assert {s for s in RunStatus if s.is_active} == {"queued", "submitted", "running"}
    assert {s for s in JobStatus if s.is_terminal} == {"succeeded", "failed", "lost", "cancelled"}


def test_a_run_follows_its_job_through_its_life_with_an_event_per_step(run):
    job = states.open_job(run)
    assert (job.status, job.attempt, job.executor, job.compute_resource) == ("pending", 1, "local", "cpu")
    assert list(job.runs.all()) == [run]
    assert states.job_launched(job, {"pid": 1})
    assert states.job_running(job)
    run.refresh_from_db()
    assert states.mark_succeeded(run, metrics={"roc_auc": 0.9}, data_summary={"train_rows": 10})
    assert states.end_job(job, JobStatus.SUCCEEDED)

    run.refresh_from_db()
    job.refresh_from_db()
    assert (run.status, job.status, job.handle) == ("succeeded", "succeeded", {"pid": 1})
    assert run.metrics == {"roc_auc": 0.9}
    assert run.submitted_at <= run.started_at <= run.finished_at
    assert job.launched_at <= job.started_at <= job.finished_at
    assert list(run.events.values_list("old_status", "new_status")) == [
        ("", "queued"),
        ("queued", "submitted"),
        ("submitted", "running"),
        ("running", "succeeded"),
    ]
    assert list(job.events.values_list("old_status", "new_status")) == [
        ("", "pending"),
        ("pending", "launched"),
        ("launched", "running"),
        ("running", "succeeded"),
    ]


def test_each_attempt_of_a_run_has_exactly_one_job(run):
    first = states.open_job(run)
    assert states.open_job(run) == first
    assert Job.objects.count() == 1
    with pytest.raises(IntegrityError):
        JobRun.objects.create(job=Job.objects.create(executor="local", compute_resource="cpu"), run=run, attempt=1)


def test_a_refused_job_fails_its_runs_with_the_executors_words(run):
    job = states.open_job(run)
    assert states.job_refused(job, "could not start the trainer: no such image")
    run.refresh_from_db()
    job.refresh_from_db()
    assert (run.status, run.failure_reason) == ("failed", "could not start the trainer: no such image")
    assert (job.status, job.cause) == ("failed", Cause.REFUSED)


def test_it_refuses_a_move_the_table_does_not_allow(run):
    with pytest.raises(TransitionNotAllowed, match="queued → running is not allowed"):
        states.transition(run, RunStatus.RUNNING)
    job = states.open_job(run)
    with pytest.raises(TransitionNotAllowed, match="pending → succeeded is not allowed"):
        states.end_job(job, JobStatus.SUCCEEDED)
    assert RunEvent.objects.filter(run=run).count() == 1


@pytest.mark.parametrize("end", ["succeeded", "failed", "cancelled"])
def test_terminal_states_are_final_for_the_system(run, end):
    launched(run)
    states.transition(run, RunStatus(end))
    for target in RunStatus:
        assert not states.can_transition(end, target)
    with pytest.raises(TransitionNotAllowed):
        states.mark_failed(run, "late failure")


def test_an_operator_may_change_a_terminal_state_and_it_leaves_an_event(run):
    first = launched(run)
    states.mark_failed(run, "the node was lost")

    assert states.requeue(run, actor="charlie")

    run.refresh_from_db()
    assert (run.status, run.attempt, run.failure_reason, run.finished_at) == ("queued", 2, "", None)
    assert run.artifact_uri.endswith(f"/runs/{run.pk}/attempt-2")
    event = run.events.last()
    assert (event.old_status, event.new_status, event.actor) == ("failed", "queued", "charlie")
    second = states.open_job(run)
    assert second != first
    assert second.attempt == 2
    assert states.carried(first) == []  # the run moved on to its next attempt


def test_a_stale_copy_loses_the_race(run):
    job = states.open_job(run)
    first, second = Job.objects.get(pk=job.pk), Job.objects.get(pk=job.pk)
    assert states.job_launched(first, {"pid": 1})
    assert not states.job_launched(second, {"pid": 2})
    job.refresh_from_db()
    assert job.handle == {"pid": 1}
    assert run.events.filter(new_status="submitted").count() == 1
    assert job.events.filter(new_status="launched").count() == 1


def test_a_batch_of_launches_is_recorded_together_and_skips_what_another_launcher_recorded(
    alice, fraud_request, django_assert_max_num_queries
):
    runs = [services.submit(alice, fraud_request)[0] for _ in range(12)]
    by_run = states.open_jobs(runs)
    jobs = [by_run[run.pk] for run in runs]
    assert states.job_launched(Job.objects.get(pk=jobs[3].pk), {"pid": 3})  # another launcher was first

    with django_assert_max_num_queries(10):  # a few statements, however many jobs
        recorded = states.jobs_launched([(job, {"pid": 100 + i}) for i, job in enumerate(jobs)])

    assert set(recorded) == {job.pk for job in jobs} - {jobs[3].pk}
    assert all(
        [run.pk for run in recorded[job.pk]] == [run.pk]
        for job, run in zip(jobs, runs, strict=True)
        if job.pk in recorded
    )
    assert Job.objects.get(pk=jobs[3].pk).handle == {"pid": 3}
    assert Job.objects.get(pk=jobs[5].pk).handle == {"pid": 105}
    assert set(Job.objects.values_list("status", flat=True)) == {"launched"}
    assert set(Run.objects.values_list("status", flat=True)) == {"submitted"}
    assert RunEvent.objects.filter(new_status="submitted").count() == 12  # one each, never two
    assert RunEvent.objects.get(run=runs[5], new_status="submitted").reason == f"launched as job {jobs[5].pk}"
    assert all(run.submitted_at is not None for run in Run.objects.all())


@pytest.mark.django_db(transaction=True)
def test_two_workers_racing_on_one_transition_have_exactly_one_winner(alice, catalogue, fraud_request):
    from training import images

    images.sync(images.DEFAULT, catalogue)
    run = services.submit(alice, fraud_request)[0]
    launched(run)
    contenders = 4
    barrier = threading.Barrier(contenders)
    wins: list[bool] = []

    def contend(n: int) -> None:
        mine = Run.objects.get(pk=run.pk)
        barrier.wait()
        try:
            wins.append(states.mark_failed(mine, f"worker {n} saw it fail"))
        finally:
            connection.close()

    threads = [threading.Thread(target=contend, args=(n,)) for n in range(contenders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(wins) == [False] * (contenders - 1) + [True]
    assert RunEvent.objects.filter(run=run, new_status="failed").count() == 1
    run.refresh_from_db()
    assert run.failure_reason == RunEvent.objects.get(run=run, new_status="failed").reason


def test_a_cancel_loses_to_a_finish_that_came_first(run):
    launched(run)
    stale = Run.objects.get(pk=run.pk)
    states.mark_succeeded(run, {}, {})
    assert not services.cancel(stale, actor="alice")
    run.refresh_from_db()
    assert run.status == "succeeded"


@pytest.mark.django_db(transaction=True)
def test_dispatchers_racing_to_open_a_runs_job_share_one(alice, catalogue, fraud_request):
    from training import images

    images.sync(images.DEFAULT, catalogue)
    run = services.submit(alice, fraud_request)[0]
    contenders = 4
    barrier = threading.Barrier(contenders)
    opened: list[int] = []

    def contend() -> None:
        mine = Run.objects.get(pk=run.pk)
        barrier.wait()
        try:
            opened.append(states.open_job(mine).pk)
        finally:
            connection.close()

    threads = [threading.Thread(target=contend) for _ in range(contenders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(opened) == contenders
    assert len(set(opened)) == 1
    assert JobRun.objects.filter(run=run).count() == 1


@pytest.mark.parametrize(("phase", "ended"), [("succeeded", "succeeded"), ("failed", "failed")])
def test_a_job_whose_runs_a_dead_worker_finished_ends_as_its_executor_says(run, phase, ended):
    from training import worker
    from training.executors import JobPhase, Outcome

    job = states.open_job(run)
    states.job_launched(job, {})
    run.refresh_from_db()
    states.mark_succeeded(run, {}, {})  # the worker finished the run, and died before ending the job

    assert worker.apply(job, Outcome(JobPhase(phase), Cause.CRASH if phase == "failed" else None))

    job.refresh_from_db()
    assert job.status == ended  # not taken for a job whose runs were cancelled
    run.refresh_from_db()
    assert run.status == "succeeded"
