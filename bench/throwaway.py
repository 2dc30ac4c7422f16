"""A throwaway PostgreSQL database for a benchmark, on the server of BENCH_POSTGRES (default the
local one): made before the benchmark, dropped after it whatever happened."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

ADMIN_URL = os.environ.get("BENCH_POSTGRES", "postgres://postgres@127.0.0.1:5432/postgres")


def database_url(name: str) -> str:
    """The address of database `name` on the benchmarks' server (for DATABASE_URL)."""
    return ADMIN_URL.rsplit("/", 1)[0] + "/" + name


@contextmanager
def throwaway_database(name: str) -> Iterator[None]:
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield
    finally:
        from django.db import connections

        connections.close_all()
        with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
