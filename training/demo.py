"""A synthetic card-fraud dataset: a year of charges and a merchants table, for the demo and tests.

Fraud is rare and rises over the year, and it depends on amount, country, channel, hour,
customer tenure and merchant category, so models have something real to find and a
date-range holdout sees drift.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

COUNTRIES = ["US", "GB", "DE", "FR", "BR", "IN", "NG", "CA", "MX", "JP"]
COUNTRY_WEIGHTS = [0.42, 0.1, 0.09, 0.08, 0.07, 0.06, 0.03, 0.07, 0.05, 0.03]
COUNTRY_RISK = dict(zip(COUNTRIES, [0.0, 0.1, 0.0, 0.1, 0.7, 0.6, 1.2, 0.0, 0.5, -0.2], strict=True))
CARD_TYPES = ["visa", "mastercard", "amex", "discover"]
CATEGORIES = ["grocery", "electronics", "travel", "digital_goods", "restaurants", "fashion", "gaming"]
CATEGORY_RISK = dict(zip(CATEGORIES, [-0.6, 0.8, 0.4, 1.0, -0.4, 0.2, 0.9], strict=True))


def merchants(n_merchants: int = 400, seed: int = 7) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "merchant_id": np.arange(1, n_merchants + 1),
            "merchant_category": rng.choice(CATEGORIES, size=n_merchants),
            "merchant_age_days": rng.integers(10, 4000, size=n_merchants),
        }
    )


def charges(
    n_rows: int = 200_000,
    start: date = date(2025, 11, 1),
    days: int = 365,
    merchant_table: pd.DataFrame | None = None,
    seed: int = 42,
) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    merchant_table = merchants() if merchant_table is None else merchant_table
    n_merchants = len(merchant_table)
    seconds = np.sort(rng.integers(0, days * 86_400, size=n_rows))
    created_at = pd.Timestamp(start) + pd.to_timedelta(seconds, unit="s")
    # Popular merchants take most charges (Zipf-like).
    merchant_idx = np.minimum(rng.zipf(1.3, size=n_rows) - 1, n_merchants - 1)
    merchant_id = merchant_table["merchant_id"].to_numpy()[merchant_idx]
    category = merchant_table["merchant_category"].to_numpy()[merchant_idx]
    country = rng.choice(COUNTRIES, size=n_rows, p=COUNTRY_WEIGHTS)
    amount = np.round(np.exp(rng.normal(3.6, 1.1, size=n_rows)), 2)
    card_present = rng.random(n_rows) < 0.55
    customer_age_days = rng.integers(0, 3650, size=n_rows)
    hour = created_at.hour.to_numpy()

    year_fraction = seconds / (days * 86_400)
    logit = (
        -6.4
        + 1.1 * year_fraction  # fraud drifts upwards through the year
        + 1.4 * np.log1p(amount / 100)
        + 1.6 * np.vectorize(COUNTRY_RISK.get)(country)
        + 1.5 * np.vectorize(CATEGORY_RISK.get)(category)
        - 1.8 * card_present
        + 0.7 * ((hour <= 4) | (hour >= 23))
        + 2.0 * (customer_age_days < 30)
    )
    is_fraud = rng.random(n_rows) < 1 / (1 + np.exp(-logit))

    frame = pd.DataFrame(
        {
            "charge_id": np.arange(1, n_rows + 1),
            "created_at": created_at,
            "amount": amount,
            "country": country,
            "merchant_id": merchant_id,
            "card_type": rng.choice(CARD_TYPES, size=n_rows, p=[0.5, 0.3, 0.15, 0.05]),
            "card_present": card_present,
            "customer_age_days": customer_age_days,
            "is_fraud": is_fraud.astype(int),
        }
    )
    # Real data has holes: some countries and tenures are unknown.
    frame.loc[rng.random(n_rows) < 0.01, "country"] = None
    frame["customer_age_days"] = frame["customer_age_days"].astype("float64")
    frame.loc[rng.random(n_rows) < 0.02, "customer_age_days"] = np.nan
    return frame


def write_dataset(directory: Path, n_rows: int = 200_000, seed: int = 42) -> dict[str, Path]:
    """Write `charges.parquet` and `merchants.parquet`; returns their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    merchant_table = merchants(seed=seed)
    paths = {"charges": directory / "charges.parquet", "merchants": directory / "merchants.parquet"}
    charges(n_rows, merchant_table=merchant_table, seed=seed).to_parquet(paths["charges"], index=False)
    merchant_table.to_parquet(paths["merchants"], index=False)
    return paths


def demo_request(charges_path: Path, merchants_path: Path) -> dict:
    """The demo's request: next month's fraud model, trained on the months before."""
    return {
        "user": "demo",
        "project": "fraud",
        "model_description": "Card-fraud model, holdout on the last month",
        "compute_resource": "cpu",
        "data": {
            "features": [
                {
                    "names": [
                        "charge_id",
                        "created_at",
                        "amount",
                        "country",
                        "merchant_id",
                        "card_type",
                        "card_present",
                        "customer_age_days",
                        "is_fraud",
                    ],
                    "source": "file",
                    "format": "parquet",
                    "path": str(charges_path),
                    "date_column": "created_at",
                },
                {
                    "names": ["merchant_id", "merchant_category", "merchant_age_days"],
                    "source": "file",
                    "format": "parquet",
                    "path": str(merchants_path),
                    "join_on": "merchant_id",
                },
            ],
            "date_range": {"start": "2025-11-01", "end": "2026-11-01"},
            "filters": [{"feature_name": "amount", "predicate": "GtEq", "feature_value": 1}],
            "holdout_sampling": {
                "sampling_function": "DATE_RANGE",
                "date_range": {"start": "2026-10-01", "end": "2026-11-01"},
            },
        },
        "train": {
            "workflow_name": "gradient_boosting",
            "classifier_features": [
                "amount",
                "country",
                "card_type",
                "card_present",
                "customer_age_days",
                "merchant_category",
                "merchant_age_days",
            ],
            "label": "is_fraud",
            "custom_params": {"max_iter": 150, "learning_rate": 0.08},
        },
    }


def upload_partitioned(charges_path: Path, uri: str) -> int:
    """Upload the charges to `<uri>/charges/date=YYYY-MM-DD/part-0.parquet`; returns the file count."""
    import io

    from railyard_trainer.storage import s3_client, split_s3_uri

    bucket, prefix = split_s3_uri(uri.rstrip("/"))
    client = s3_client()
    frame = pd.read_parquet(charges_path)
    days = frame["created_at"].dt.strftime("%Y-%m-%d")
    for day, rows in frame.groupby(days):
        buffer = io.BytesIO()
        rows.to_parquet(buffer, index=False)
        key = "/".join(p for p in (prefix, "charges", f"date={day}", "part-0.parquet") if p)
        client.put_object(Bucket=bucket, Key=key, Body=buffer.getvalue())
    return days.nunique()


def s3_demo_request(uri: str) -> dict:
    """The demo request, reading the partitioned charges from S3 (`date` is the partition column)."""
    request = demo_request(Path("unused"), Path("unused"))
    request["model_description"] = "Card-fraud model from S3, holdout on the last month"
    charges = request["data"]["features"][0]
    request["data"]["features"] = [
        {
            **charges,
            "names": ["date", *[n for n in charges["names"] if n != "created_at"]],
            "source": "s3",
            "path": f"{uri.rstrip('/')}/charges/",
            "date_column": "date",
        }
    ]
    request["train"]["classifier_features"] = [
        f for f in request["train"]["classifier_features"] if f not in ("merchant_category", "merchant_age_days")
    ]
    return request


#: Synthetic merchants for segmented requests, m00 … m49: fraud rises with x1, except at the first
#: SEGMENT_OWN of them, where it falls with x1 (a generic model ranks their charges backwards); x2 is
#: noise everywhere.
SEGMENT_MERCHANTS, SEGMENT_OWN, SEGMENT_ROWS = 50, 10, 1200
#: Merchants with fewer rows than a segment model needs (min_rows 500).
SMALL_MERCHANTS = ("s0", "s1", "s2")


def write_segmented(
    path: Path, merchants: int = SEGMENT_MERCHANTS, own: int = SEGMENT_OWN, rows: int = SEGMENT_ROWS, seed: int = 7
) -> Path:
    """A parquet file of charges by merchant: `x1`, `x2`, `merchant`, `charge_id`, their `day` (the first
    half of 2026) and the label `fraud`."""
    rng = np.random.default_rng(seed)
    names = [f"m{i:02d}" for i in range(merchants)]
    sizes = {name: rows for name in names} | {name: 150 for name in SMALL_MERCHANTS}
    parts = []
    for name, size in sizes.items():
        x1, x2 = rng.normal(size=size), rng.normal(size=size)
        special = name in names and names.index(name) < own
        signal = -2 * x1 if special else 1.5 * x1
        fraud = (rng.random(size) < 1 / (1 + np.exp(-signal))).astype(int)
        day = pd.Timestamp("2026-01-01") + pd.to_timedelta(rng.integers(0, 181, size), unit="D")
        parts.append(pd.DataFrame({"merchant": name, "day": day, "x1": x1, "x2": x2, "fraud": fraud}))
    frame = pd.concat(parts, ignore_index=True)
    frame.insert(0, "charge_id", np.arange(len(frame)) + 1000)
    frame.to_parquet(path, index=False)
    return path


def segmented_request(path: Path, **segment_by) -> dict:
    """A request for a generic model and one per merchant with at least 500 training rows."""
    return {
        "project": "merchants",
        "compute_resource": "cpu",
        "data": {
            "features": [
                {
                    "names": ["charge_id", "merchant", "x1", "x2", "fraud"],
                    "source": "file",
                    "format": "parquet",
                    "path": str(path),
                }
            ],
            "id_column": "charge_id",
            "holdout_sampling": {"sampling_function": "RANDOM", "fraction": 0.25, "seed": 3},
        },
        "train": {
            "workflow_name": "logistic_regression",
            "classifier_features": ["x1", "x2"],
            "label": "fraud",
            "segment_by": {"column": "merchant", "min_rows": 500, **segment_by},
        },
    }
