"""Failures the trainer reports, and the exit codes that tell them apart."""

from __future__ import annotations

EXIT_OK = 0
#: The spec or the data cannot train (sysexits' EX_DATAERR). Retrying will not help.
EXIT_BAD_DATA = 65
#: The trainer itself broke (sysexits' EX_SOFTWARE): a bug, not the user's data.
EXIT_CRASH = 70
#: The trainer ran out of memory (sysexits' EX_OSERR): a larger compute profile may help.
EXIT_OUT_OF_MEMORY = 71


class BadDataError(Exception):
    """The spec or the data cannot produce a model; the message names the problem."""

    exit_code = EXIT_BAD_DATA
