"""What a segmented request's page shows: the segment table (sorted, searched, paged through the query
string), the chart of segment-minus-generic differences with their intervals, and the counts routed
each way; and, on a child's page, its place in the request."""

from __future__ import annotations

from django.core.paginator import Paginator
from django.http import HttpRequest

from railyard_trainer.body import InvalidRequest
from railyard_trainer.vocabulary import RUN_TERMINAL, RunKind, RunStatus, Winner
from training import charts
from training.models import Run, Segment
from training.segments.api import ORDERINGS, table

PAGE_SIZE = 50
#: The table's sortable columns and their headings.
COLUMNS = dict(
    zip(
        ORDERINGS,
        ("Segment", "Training rows", "Holdout rows", "Segment model", "Generic model", "Difference", "Served by"),
        strict=True,
    )
)
#: The segments the chart draws at most (the table pages through all of them).
CHARTED = 2000


def context(request: HttpRequest, run: Run) -> dict:
    """The page's `segmented` context for a segmented request (None for other runs)."""
    if run.kind != RunKind.SEGMENTED:
        return {}
    params = request.GET
    ordering = params.get("sort", "-difference")
    search = params.get("q", "").strip()
    winner = params.get("winner", "")
    try:
        rows = table(run, ordering, search, winner)
    except InvalidRequest:
        ordering, winner = "-difference", ""
        rows = table(run, ordering, search)
    page = Paginator(rows, PAGE_SIZE).get_page(params.get("page"))
    every = Segment.objects.filter(parent=run)
    routed = {w.value: every.filter(winner=w).count() for w in Winner}
    charted = list(every.exclude(difference=None).order_by("difference")[:CHARTED])
    return {
        "segmented": {
            "page": page,
            "ordering": ordering,
            "search": search,
            "winner": winner,
            "columns": COLUMNS.items(),
            "routed": routed,
            "total": sum(routed.values()),
            "children": run.children.count(),
            "ended_children": run.children.filter(status__in=RUN_TERMINAL).count(),
            "failed_children": run.children.filter(status=RunStatus.FAILED).count(),
            "generic": run.children.filter(kind=RunKind.GENERIC).first(),
        },
        "segment_chart": charts.segment_differences(charted),
    }
