"""How far a trainer has got, read from the stage lines of its log."""

from __future__ import annotations

import re

from railyard_trainer.stages import STAGES

STAGE_LINE = re.compile(r"stage=(\w+) (started|done)")


def progress(log: str) -> tuple[str | None, int]:
    """The stage the trainer is in (or last finished) and the percentage of stages done."""
    stage, done = None, 0
    for name, what in STAGE_LINE.findall(log):
        if name in STAGES:
            stage = name
            done = STAGES.index(name) + (what == "done")
    return stage, round(100 * done / len(STAGES))
