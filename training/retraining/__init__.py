"""Continuous retraining: models defined once and retrained on schedules with sliding date windows.

- `dates`: relative dates in a model's request (`today-90d`), resolved from a fire time.
"""
