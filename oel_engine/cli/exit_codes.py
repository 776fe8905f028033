"""What the `oel` command's exit status means (scripts and CI read these)."""

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    UNEXPECTED = 1  # a bug: the one-line message says how to see the traceback (OEL_DEBUG=1)
    REFUSED = 2  # bad input or a refused request (an OelError, a usage error): the line says what to do
    STOPPED = 130  # Ctrl-C or a stop request: what was finished is saved, the same command resumes
