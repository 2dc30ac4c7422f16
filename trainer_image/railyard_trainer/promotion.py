"""When a challenger replaces a model's champion: the promotion policy and its defaults.

A policy is `{"mode", "min_improvement", "confidence", "guardrails"}`:

- `mode`: `auto` promotes when the lower bound of the paired bootstrap interval of the difference
  (challenger less champion, in the metric's better direction) exceeds `min_improvement` and every
  guardrail passes; `approval` waits for a person; `shadow` records the comparison only.
- `confidence`: of the two-sided interval (0.95: the 2.5th to 97.5th percentile of the resampled
  differences).
- `guardrails.brier_margin`: a binary challenger whose Brier score is worse than the champion's by
  more than this is not promoted (null: no calibration guardrail).
- `guardrails.segment_column` and `segment_margin`: no value of that column (with at least
  `min_segment_rows` holdout rows) may score worse than under the champion by more than the margin.

Imports no pandas and no Django: the service checks a model's policy with it, the trainer decides with it.
"""

from __future__ import annotations

from typing import Any

from railyard_trainer.body import InvalidRequest
from railyard_trainer.vocabulary import METRICS, Decision, PromotionMode

POLICY_KEYS = {"mode", "min_improvement", "confidence", "guardrails"}
GUARDRAIL_KEYS = {"brier_margin", "segment_column", "segment_margin", "min_segment_rows"}
DEFAULT_GUARDRAILS = {"brier_margin": 0.01, "segment_column": None, "segment_margin": 0.02, "min_segment_rows": 50}
DEFAULT_POLICY = {
    "mode": PromotionMode.AUTO.value,
    "min_improvement": 0.0,
    "confidence": 0.95,
    "guardrails": DEFAULT_GUARDRAILS,
}
CHALLENGE_KEYS = {"champion_run", "champion_uri", "metric", "policy"}
#: Paired bootstrap resamples of the holdout rows (seeded by the run's seed).
RESAMPLES = 2000


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def check_policy(raw: Any, path: str = "promotion") -> dict:
    """The policy with its defaults filled in; InvalidRequest naming each bad field."""
    errors: dict[str, list[str]] = {}

    def add(key: str, message: str) -> None:
        errors.setdefault(f"{path}.{key}", []).append(message)

    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise InvalidRequest({path: ["Must be a JSON object."]})
    for key in sorted(set(raw) - POLICY_KEYS):
        add(key, f"Unknown field; the policy takes {', '.join(sorted(POLICY_KEYS))}.")
    policy = {**DEFAULT_POLICY, **{k: v for k, v in raw.items() if k in POLICY_KEYS and k != "guardrails"}}
    modes = [mode.value for mode in PromotionMode]
    if policy["mode"] not in modes:
        add("mode", f"Unknown mode {policy['mode']!r}; choose one of {', '.join(modes)}.")
    if not _number(policy["min_improvement"]) or policy["min_improvement"] < 0:
        add("min_improvement", "Must be a number of at least 0 (in the metric's units).")
    if not _number(policy["confidence"]) or not 0.5 <= policy["confidence"] < 1:
        add("confidence", "Must be a number from 0.5 to below 1 (0.95 is usual).")

    guards = raw.get("guardrails") or {}
    if not isinstance(guards, dict):
        add("guardrails", "Must be a JSON object.")
        guards = {}
    for key in sorted(set(guards) - GUARDRAIL_KEYS):
        add(f"guardrails.{key}", f"Unknown guardrail; choose from {', '.join(sorted(GUARDRAIL_KEYS))}.")
    guardrails = {**DEFAULT_GUARDRAILS, **{k: v for k, v in guards.items() if k in GUARDRAIL_KEYS}}
    for key in ("brier_margin", "segment_margin"):
        value = guardrails[key]
        if not (value is None and key == "brier_margin") and (not _number(value) or value < 0):
            add(f"guardrails.{key}", "Must be a number of at least 0" + (" or null." if key == "brier_margin" else "."))
    column = guardrails["segment_column"]
    if column is not None and (not isinstance(column, str) or not column.strip()):
        add("guardrails.segment_column", "Must be a column name or null.")
    rows = guardrails["min_segment_rows"]
    if isinstance(rows, bool) or not isinstance(rows, int) or rows < 1:
        add("guardrails.min_segment_rows", "Must be a whole number of at least 1.")
    if errors:
        raise InvalidRequest(errors)
    return {**policy, "min_improvement": float(policy["min_improvement"]), "guardrails": guardrails}


def check_challenge(raw: Any) -> dict | None:
    """A spec's `challenge` (the champion a model's retrain is compared with), or None; InvalidRequest
    when malformed."""
    if raw is None:
        return None
    errors: dict[str, list[str]] = {}
    if not isinstance(raw, dict) or set(raw) != CHALLENGE_KEYS:
        raise InvalidRequest({"challenge": [f"Must be an object of {', '.join(sorted(CHALLENGE_KEYS))}."]})
    if isinstance(raw["champion_run"], bool) or not isinstance(raw["champion_run"], int):
        errors["challenge.champion_run"] = ["Must be a run id."]
    if not isinstance(raw["champion_uri"], str) or not raw["champion_uri"]:
        errors["challenge.champion_uri"] = ["Must be the champion's artifact folder."]
    if raw["metric"] not in METRICS:
        errors["challenge.metric"] = [f"Unknown metric {raw['metric']!r}."]
    try:
        policy = check_policy(raw["policy"], "challenge.policy")
    except InvalidRequest as exc:
        errors.update(exc.errors)
    if errors:
        raise InvalidRequest(errors)
    return {**raw, "policy": policy}


def decide(policy: dict, metric: str, interval: tuple[float, float], guardrails: list[dict]) -> tuple[str, str]:
    """The decision on a challenger and its reason, from the interval of its difference from the
    champion (positive: better) and the guardrails it was held to."""
    low, high = interval
    floor = policy["min_improvement"]
    shown = f"the {policy['confidence']:.0%} interval of the difference in {metric}, [{low:+.4f}, {high:+.4f}],"
    failed = [guard for guard in guardrails if not guard["passed"]]
    if low <= floor:
        wins = False
        noise = " (it includes zero: the difference may be noise)" if low <= 0 <= high else ""
        why = f"{shown} does not lie above min_improvement {floor}{noise}"
    elif failed:
        wins = False
        why = f"{shown} lies above min_improvement {floor}, but a guardrail failed: " + "; ".join(
            f"{guard['name']}: {guard['reason']}" for guard in failed
        )
    else:
        wins = True
        why = f"{shown} lies above min_improvement {floor} and every guardrail passed"
    if policy["mode"] == PromotionMode.SHADOW:
        return Decision.SHADOW.value, f"shadow mode records only; by the numbers it would be {_verdict(wins)}: {why}"
    if policy["mode"] == PromotionMode.APPROVAL:
        return (
            Decision.AWAITING_APPROVAL.value,
            f"waiting for a person; by the numbers it would be {_verdict(wins)}: {why}",
        )
    return (Decision.PROMOTED if wins else Decision.KEPT).value, why


def _verdict(wins: bool) -> str:
    return "promoted" if wins else "kept"


def undecided(policy: dict, why: str) -> tuple[str, str]:
    """The decision when no comparison could be made: a person decides under `approval`, nothing moves otherwise."""
    if policy["mode"] == PromotionMode.APPROVAL:
        return Decision.AWAITING_APPROVAL.value, f"waiting for a person; {why}"
    if policy["mode"] == PromotionMode.SHADOW:
        return Decision.SHADOW.value, f"shadow mode records only; {why}"
    return Decision.KEPT.value, f"the champion stays: {why}"
