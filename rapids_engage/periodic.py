"""Work done every few seconds beside a block: a stage's heartbeat line, a store's in-use mark rewritten, a watch
on the cluster's workers. One daemon thread per block, stopped when the block ends, however it ends."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator


@contextlib.contextmanager
def every(seconds: float, tick: Callable[[], object], name: str, join: bool = True) -> Iterator[None]:
    """While open, call ``tick()`` every ``seconds`` from a daemon thread called ``name``, until the block ends or
    ``tick`` returns False. ``join``: wait for a tick in progress at the block's end (False where a tick may block on
    something gone: a scheduler's reply)."""
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(seconds):
            if tick() is False:
                return

    thread = threading.Thread(target=loop, name=name, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        if join:
            thread.join()
