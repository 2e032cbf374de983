"""Ctrl-C and SIGTERM end a run in one line (``commands.main`` wraps every command in :func:`stop_signals`)."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import Any


@contextlib.contextmanager
def stop_signals() -> Iterator[None]:
    """Ctrl-C and SIGTERM (systemd, Slurm, Kubernetes) end a run alike: one line, exit 130, the cluster
    closed and temporary directories left to the next run's clean-up. From the signal on, ``distributed``
    logs nothing: the scheduler (in this process) logged the work being cancelled as errors with
    tracebacks (a shuffle's ``shuffle_barrier``). A signal landing where Python drops exceptions ("Exception
    ignored in …": a gc callback — distributed registers one —, a weakref callback, a ``__del__``) is
    delivered again 50 ms later: it was lost, and the run finished with exit status 0. Main thread only; the
    handlers, hook and level come back after."""
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
    before = {s: signal.signal(s, interrupt) for s in (signal.SIGINT, signal.SIGTERM)}
    hook, sys.unraisablehook = sys.unraisablehook, dropped
    try:
        yield
    finally:
        for s, handler in before.items():
            signal.signal(s, handler)
        sys.unraisablehook = hook
        log.setLevel(level)
