"""Defects found reviewing the merges d3579e7..f37ae10 (review 7)."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest

from rapids_engage.config import load_config
from rapids_engage.features.key_checks import role_changes

HN = Path(__file__).resolve().parents[1] / "configs" / "hn.yaml"


@pytest.mark.parametrize("override", ["train.targets=[points]", "data.table.targets.points.column=pts",
                                      "out=author"])
def test_role_changes_names_only_data_table_roles(override):
    """An override of a key that is no ``data.table`` role (or a setting nested below one) re-maps no role: it was
    said as '--set data.table.train.targets changed it from [...] to None' beside a key column it never named."""
    assert role_changes(load_config(HN, [override])) == {}


def test_role_changes_names_a_re_mapped_role():
    assert role_changes(load_config(HN, ["data.table.creator=username"])) == {
        "author": "--set data.table.creator changed it from 'author' to 'username', and the keys still name the old one"}


class _Stop(Exception):
    pass


def test_audit_says_the_auto_backend_once_and_its_runs_keep_it(monkeypatch, tmp_path):
    """``audit --gpus auto --scheduler-address ...``: each of its runs (quiet) and its checks asked the workers again
    over a connection of their own (d3579e7), and the line saying which backend and why was never shown."""
    from rich.console import Console

    from rapids_engage import audit, existing_cluster, pipeline
    from rapids_engage.backend import CPU
    from rapids_engage.config import Config

    asked, runs = [], []
    monkeypatch.setattr(existing_cluster, "run_backend", lambda cfg: asked.append(cfg) or (CPU, "--gpus auto: CPU backend, why"))

    def run(cfg, **kwargs):
        runs.append(kwargs.get("backend"))
        raise _Stop

    monkeypatch.setattr(pipeline, "run", run)
    console = Console(record=True, width=200)
    cfg = Config()
    cfg.out = str(tmp_path / "audit")
    with pytest.raises(_Stop):
        audit.run_audit(cfg, console)
    assert len(asked) == 1 and runs == [CPU]
    assert "audit: --gpus auto: CPU backend, why" in console.export_text()


def test_a_run_given_its_backend_does_not_ask_again(monkeypatch, tmp_path):
    from rich.console import Console

    from rapids_engage import pipeline
    from rapids_engage.backend import CPU
    from rapids_engage.config import Config

    monkeypatch.setattr(pipeline, "run_backend", lambda cfg: pytest.fail("asked again"))
    cfg = Config()
    cfg.out, cfg.data.cache_dir = str(tmp_path / "run"), str(tmp_path / "cache")
    with pipeline._stages(cfg, True, Console(record=True), CPU) as (backend, *_):
        assert backend == CPU


def test_each_audit_run_is_a_stage_with_its_seconds(monkeypatch, tmp_path):
    """The audit's runs are quiet: at 200k rows each was a minute with no output (no bar, no line) between
    "audit: shuffle 1 ..." and the next line. Each is now a stage of the audit's: a bar, then its seconds."""
    from rich.console import Console

    from rapids_engage import audit, existing_cluster, pipeline
    from rapids_engage.backend import CPU
    from rapids_engage.config import Config

    def run(cfg, **kwargs):
        if kwargs.get("shuffle_seed") is not None:
            raise _Stop
        return {"targets": {}}

    monkeypatch.setattr(existing_cluster, "run_backend", lambda cfg: (CPU, None))
    monkeypatch.setattr(pipeline, "run", run)
    monkeypatch.setattr(audit, "real_version_held", lambda real, out, log=None: contextlib.nullcontext())  # no store here
    console = Console(record=True, width=200)
    cfg = Config()
    cfg.out = str(tmp_path / "audit")
    with pytest.raises(_Stop):
        audit.run_audit(cfg, console, shuffles=1)
    text = console.export_text()
    assert "✓ real run" in text and "shuffle 1 of 1" in text, text
