"""The run state machine: allowed moves, conditional updates, events, and races between workers."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from training import services, states
from training.models import Run, RunEvent
from training.states import RunStatus, TransitionNotAllowed

pytestmark = pytest.mark.usefixtures("workflows")


@pytest.fixture
def run(alice, fraud_request) -> Run:
    return services.submit(alice, fraud_request)[0]


def test_it_knows_which_statuses_are_terminal():
    assert {s for s in RunStatus if s.is_terminal} == {"succeeded", "failed", "cancelled"}
    assert {s for s in RunStatus if s.is_active} == {"queued", "submitted", "running"}


def test_it_walks_a_run_through_its_life_with_an_event_per_step(run):
    assert states.mark_submitted(run, {"pid": 1}, "local")
    assert states.mark_running(run)
    assert states.mark_succeeded(run, metrics={"roc_auc": 0.9}, data_summary={"train_rows": 10})

    run.refresh_from_db()
    assert run.status == "succeeded"
    assert run.metrics == {"roc_auc": 0.9}
    assert run.submitted_at <= run.started_at <= run.finished_at
    assert list(run.events.values_list("old_status", "new_status")) == [
        ("", "queued"),
        ("queued", "submitted"),
        ("submitted", "running"),
        ("running", "succeeded"),
    ]


def test_it_refuses_a_move_the_table_does_not_allow(run):
    with pytest.raises(TransitionNotAllowed, match="queued → running is not allowed"):
        states.mark_running(run)
    assert RunEvent.objects.filter(run=run).count() == 1


@pytest.mark.parametrize("end", ["succeeded", "failed", "cancelled"])
def test_terminal_states_are_final_for_the_system(run, end):
    states.mark_submitted(run, {}, "local")
    states.transition(run, RunStatus(end))
    for target in RunStatus:
        assert not states.can_transition(end, target)
    with pytest.raises(TransitionNotAllowed):
        states.mark_failed(run, "late failure")


def test_an_operator_may_change_a_terminal_state_and_it_leaves_an_event(run):
    states.mark_submitted(run, {}, "local")
    states.mark_failed(run, "the node was lost")

    assert states.requeue(run, actor="charlie")

    run.refresh_from_db()
    assert (run.status, run.attempt, run.failure_reason, run.finished_at) == ("queued", 2, "", None)
    event = run.events.last()
    assert (event.old_status, event.new_status, event.actor) == ("failed", "queued", "charlie")


def test_a_stale_copy_loses_the_race(run):
    first, second = Run.objects.get(pk=run.pk), Run.objects.get(pk=run.pk)
    assert states.mark_submitted(first, {"pid": 1}, "local")
    assert not states.mark_submitted(second, {"pid": 2}, "local")
    run.refresh_from_db()
    assert run.job_handle == {"pid": 1}
    assert run.events.filter(new_status="submitted").count() == 1


@pytest.mark.django_db(transaction=True)
def test_two_workers_racing_on_one_transition_have_exactly_one_winner(alice, catalogue, fraud_request):
    from training.management.commands.sync_workflows import sync

    sync(catalogue)
    run = services.submit(alice, fraud_request)[0]
    states.mark_submitted(run, {}, "local")
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
    states.mark_submitted(run, {}, "local")
    stale = Run.objects.get(pk=run.pk)
    states.mark_succeeded(run, {}, {})
    assert not services.cancel(stale, actor="alice")
    run.refresh_from_db()
    assert run.status == "succeeded"
