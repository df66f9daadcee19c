"""Errors users can act on. The CLI prints a `ZooError`, an `OSError` from the file system or
the host's or a device's out-of-memory error as one line (`user_message`) and exits 2."""

from __future__ import annotations

import argparse
import difflib
import signal
import sys
from collections.abc import Iterable
from typing import NoReturn


def _shared(a: str, b: str) -> int:
    """Length of the common prefix of `a` and `b`."""
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


class ZooError(Exception):
    """Base class: a problem with the user's input, config, data or files (not a bug)."""


class UnknownNameError(ZooError, KeyError):
    """A model, dataset, optimizer, loss or option name that is not registered."""

    def __init__(self, kind: str, name: str, known: Iterable[str]):
        known = sorted(known)
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
        # equally similar names: the one sharing the longer prefix first ('cnm' -> 'cnn')
        similarity = lambda c: difflib.SequenceMatcher(None, name, c).ratio()
        close.sort(key=lambda c: (-similarity(c), -_shared(name, c)))
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        super().__init__(f"unknown {kind} {name!r}{hint} (known: {', '.join(known)})")

    def __str__(self) -> str:  # KeyError would quote the message
        return self.args[0]


class InputError(ZooError, ValueError):
    """Arrays that do not match what the model declares (rank, layout, dtype, range)."""


class DataError(ZooError):
    """A dataset file that is missing, truncated or fails its checksum."""


class CheckpointError(ZooError):
    """A checkpoint that is missing, corrupted, or was written for another config."""


class NonFiniteError(ZooError):
    """Training produced a non-finite loss or gradient (NaN policy 'stop')."""


def user_message(err: BaseException) -> str | None:
    """The one line a command prints for an error the user can act on: a `ZooError`, what
    the file system refused (a full disk, no permission, a file where a directory should be)
    and where, or the host or a device out of memory. None for anything else: a bug, whose traceback
    should show."""
    if isinstance(err, ZooError):
        return str(err)
    if isinstance(err, OSError):
        reason = err.strerror or str(err)
        return f"{reason}: {err.filename}" if err.filename else reason
    if isinstance(err, MemoryError):  # e.g. numpy's, for a batch the host cannot hold
        first = str(err).strip().splitlines()[0][:160] if str(err).strip() else "MemoryError"
        return f"the host ran out of memory ({first}): lower the batch size or the model's size"
    import jax  # here, so that importing the errors stays cheap

    # GPUs and TPUs say RESOURCE_EXHAUSTED; the CPU client "INTERNAL: ... Out of memory"
    out_of_memory = "RESOURCE_EXHAUSTED" in str(err) or "out of memory" in str(err).lower()
    if isinstance(err, jax.errors.JaxRuntimeError) and out_of_memory:
        first = str(err).strip().splitlines()[0][:160]
        return f"the device ran out of memory ({first}): lower the batch size or the model's size"
    return None


def report(err: Exception, prog: str) -> int:
    """Print `err` as `prog: error: <one line>` and return the exit status 2; re-raise it when
    it is a bug (`user_message` is None), so that its traceback shows. For `except` blocks."""
    message = user_message(err)
    if message is None:
        raise err
    print(f"{prog}: error: {message}", file=sys.stderr)
    return 2


def report_interrupt(err: KeyboardInterrupt, prog: str) -> int:
    """Print a stop by Ctrl-C or SIGTERM (`train.loop.Interrupted` says where it stopped and
    whether it saved) as one line; the exit status is the shell's 128 + the signal's number."""
    print(f"{prog}: interrupted: {err}" if str(err) else f"{prog}: interrupted", file=sys.stderr)
    return 128 + getattr(err, "signum", signal.SIGINT)


class ArgumentParser(argparse.ArgumentParser):
    """argparse whose errors are `ZooError`s, printed by the command as one line with exit
    status 2 (argparse's own print the usage too). The experiments' scripts use it as well."""

    def error(self, message: str) -> NoReturn:
        raise ZooError(message)
