"""Review 13: the stage heartbeat (progress lines without a live bar) and tests sharing conftest's in-process cluster."""

from __future__ import annotations

import io
import threading

from rich.console import Console

from rapids_engage.progress import StageProgress


def test_a_dumb_terminal_gets_the_heartbeat_lines():
    """A terminal rich cannot draw a bar on (TERM=dumb or unknown: Emacs' shell, a CI pty) showed no bar and, being a
    terminal, no heartbeat line either: a whole stage was silent. It gets the lines a log gets."""
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=120, _environ={"TERM": "dumb"})
    assert console.is_terminal and console.is_dumb_terminal
    beat = threading.Event()
    prog = StageProgress(console, heartbeat=0.01)
    original = prog.beat
    prog.beat = lambda name, elapsed: (original(name, elapsed), beat.set())  # type: ignore[method-assign]
    with prog, prog.stage("features"):
        prog.update(1, 4, "1 of 4")
        assert beat.wait(30), "no heartbeat line on a dumb terminal"
    assert any(line.startswith("  … features") and line.endswith("s: 1 of 4") for line in out.getvalue().splitlines())
