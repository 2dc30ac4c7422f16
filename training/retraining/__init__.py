"""Continuous retraining: models defined once and retrained on schedules with sliding date windows.

- `dates`: relative dates in a model's request (`today-90d`), resolved from a fire time.
- `cron`: when a schedule fires (croniter in the schedule's timezone; each wall time once).
"""
