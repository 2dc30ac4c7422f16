"""What data a run read, and whether it is the data of the run it repeats.

The trainer records, per source, what it read (`data_summary.sources`: path, size, modification
time or S3 ETag and version id, rows, and a fingerprint of them). A retry is compared with the run it
retries, a clone with the run it was cloned from, a requeued run's attempt with its attempt before;
the differences go into the run's `data_summary` (`data_changes`, `data_compared_with`), its
succeeded event, the run page's banner and the API.
"""

from __future__ import annotations

import json
from typing import Any

from railyard_trainer import vocabulary as v
from railyard_trainer.storage import StoreError, open_store
from training.models import Artifact, Run

#: What tells two reads of a source apart, in the words a person reads.
COMPARED = (
    ("path", "path"),
    ("version_id", "version"),
    ("etag", "ETag"),
    ("size", "bytes"),
    ("rows", "rows"),
)


def changes(before: list[dict], after: list[dict]) -> list[str]:
    """How the data read differs, one line per source that differs; none when the same rows were read."""
    lines = []
    for i in range(max(len(before), len(after))):
        old = before[i] if i < len(before) else None
        new = after[i] if i < len(after) else None
        where = f"data.features[{i}]"
        if old is None or new is None:
            lines.append(f"{where}: {'added' if old is None else 'no longer read'}")
            continue
        if old.get("fingerprint") == new.get("fingerprint") and old.get("path") == new.get("path"):
            continue
        parts = [
            f"{words} {old.get(key)} → {new.get(key)}"
            for key, words in COMPARED
            if key in old and key in new and old[key] != new[key]
        ]
        if "modified" in old and "modified" in new and old["modified"] != new["modified"]:
            parts.append(f"modified {old['modified']} → {new['modified']}")
        lines.append(f"{where} ({new.get('path')}): {'; '.join(parts) or 'the rows differ'}")
    return lines


def reference(run: Run) -> tuple[str, list[dict]] | None:
    """What the run's data is compared with, in words, and that data: its earlier attempt's, the
    run it retries, or the run it was cloned from; None when there is nothing to compare with."""
    if run.attempt > 1:
        earlier = _attempt_sources(run, run.attempt - 1)
        if earlier is not None:
            return f"attempt {run.attempt - 1}", earlier
    for original in (run.retried_from, run.cloned_from):
        if original is not None and (original.data_summary or {}).get("sources"):
            return f"run {original.pk}", original.data_summary["sources"]
    return None


def _attempt_sources(run: Run, attempt: int) -> list[dict] | None:
    artifact = Artifact.objects.filter(run=run, attempt=attempt, name=v.METADATA).first()
    if artifact is None:
        return None
    try:
        metadata = json.loads(open_store(artifact.folder_uri).get(v.METADATA))
    except (StoreError, OSError, ValueError):  # gone, or unreadable: nothing to compare with
        return None
    return (metadata.get("data_summary") or {}).get("sources")


def compared(run: Run, summary: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """The run's new data summary with its data compared (if there is something to compare with),
    and words for its succeeded event."""
    found = reference(run)
    if found is None or not summary.get("sources"):
        return summary, "trainer finished"
    label, before = found
    lines = changes(before, summary["sources"])
    summary = {**summary, "data_compared_with": label, "data_changes": lines}
    if not lines:
        return summary, f"trainer finished; the data is the data of {label}"
    return summary, f"trainer finished; the data differs from {label}'s: " + " / ".join(lines)
