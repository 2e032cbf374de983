"""External-memory training's disk cache: what a stopped run left is deleted by the next."""

from __future__ import annotations

import os
import socket
import subprocess
import sys


def test_the_cache_of_a_stopped_training_goes_at_the_next(tmp_path):
    """A Ctrl-C during train.external_memory's training left xgb-extmem-*/ with its quantised pages (73 MB at
    300k rows, a quarter of the training split) under cluster.local_directory, run after run."""
    from rapids_engage.train_external import cache_scratch

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True).stdout.strip()
    host = socket.gethostname().replace("-", "_")
    stale = tmp_path / f"xgb-extmem-{host}-{dead}-abc"
    live = tmp_path / f"xgb-extmem-{host}-{os.getpid()}-def"  # a training in progress (this process)
    other = tmp_path / f"xgb-extmem-elsewhere-{dead}-ghi"  # another host's, on a shared directory
    for d in (stale, live, other):
        d.mkdir()
        (d / "train.gradient_index.page").write_bytes(b"x")
    new = cache_scratch(str(tmp_path))
    assert not stale.exists() and live.exists() and other.exists()
    assert os.path.basename(new).startswith(f"xgb-extmem-{host}-{os.getpid()}-") and os.path.isdir(new)
