"""Ctrl-C and SIGTERM end a run in one line (``commands.main`` wraps every command in :func:`stop_signals`); a run
that stops itself (:func:`interrupt_main_for`) ends on its own error's line."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import Any

#: The error the process interrupted itself for (:func:`interrupt_main_for`) in the command under way.
_STOPPED_FOR: list[Exception] = []


def interrupt_main_for(error: Exception) -> None:
    """Stop the main thread as Ctrl-C does (a SIGINT: the same clean-up), for ``error``, recorded first: the
    KeyboardInterrupt can surface anywhere (a stage's end, a ``with``'s exit), and the command's handler turns it
    into ``error``'s line (:func:`interrupted_for`) instead of "interrupted"."""
    import signal
    import threading

    _STOPPED_FOR[:] = [error]
    signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)


def interrupted_for() -> Exception | None:
    """The error the command under way interrupted itself for (:func:`interrupt_main_for`), else None (a Ctrl-C)."""
    return _STOPPED_FOR[0] if _STOPPED_FOR else None


@contextlib.contextmanager
def stop_signals() -> Iterator[None]:
    """Ctrl-C and SIGTERM (systemd, Slurm, Kubernetes) end a run alike: one line, exit 130, the cluster
    closed and temporary directories left to the next run's clean-up. From the signal on, ``distributed``
    logs nothing: the scheduler (in this process) logged the work being cancelled as errors with
    tracebacks (a shuffle's ``shuffle_barrier``). A signal landing where Python drops exceptions ("Exception
    ignored in …": a gc callback — distributed registers one —, a weakref callback, a ``__del__``) is
    delivered again 50 ms later: it was lost, and the run finished with exit status 0. Main thread only; the
    handlers, hook and level come back after, and a stop recorded by :func:`interrupt_main_for` is forgotten
    (on entry too: it was another command's)."""
    import _thread
    import logging
    import signal
    import threading

    log = logging.getLogger("distributed")
    level = log.level
    last = [signal.SIGINT]

    def interrupt(signum: int, frame: Any) -> None:  # noqa: ARG001 - signal handler signature
        log.setLevel(logging.CRITICAL)
        last[0] = signum
        raise KeyboardInterrupt

    def again() -> None:
        if signal.getsignal(last[0]) is interrupt:  # not once the run has ended
            _thread.interrupt_main(last[0])

    def dropped(unraisable: Any) -> None:
        if unraisable.exc_type is KeyboardInterrupt and signal.getsignal(last[0]) is interrupt:
            threading.Timer(0.05, again).start()
        else:
            hook(unraisable)

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _STOPPED_FOR.clear()
    before = {s: signal.signal(s, interrupt) for s in (signal.SIGINT, signal.SIGTERM)}
    hook, sys.unraisablehook = sys.unraisablehook, dropped
    try:
        yield
    finally:
        _STOPPED_FOR.clear()
        for s, handler in before.items():
            signal.signal(s, handler)
        sys.unraisablehook = hook
        log.setLevel(level)
