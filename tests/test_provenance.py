"""A run's resolved config reruns it: config.yaml loads back to the same Config, whatever the source."""

from __future__ import annotations

from pathlib import Path

import pytest

from rapids_engage.backend import CPU
from rapids_engage.config import load_config
from rapids_engage.provenance import CONFIG_FILE, run_info, write_config

CONFIGS = sorted((Path(__file__).parent.parent / "configs").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_written_config_loads_back_equal(tmp_path, path):
    cfg = load_config(path, ["train.max_depth=5", "train.per_target={like: {scale_pos_weight: 2.0}}", "cluster.gpus=0"])
    written = write_config(cfg, tmp_path)
    assert written == tmp_path / CONFIG_FILE and not list(tmp_path.glob("*.part"))
    again = load_config(written)
    assert again == cfg
    assert again.train.max_depth == 5 and again.train.per_target == {"like": {"scale_pos_weight": 2.0}}


def test_run_info_names_the_command_times_and_libraries():
    info = run_info(CPU, 1_700_000_000.0, "python -m rapids_engage.pipeline --gpus 0")
    assert info["command"] == "python -m rapids_engage.pipeline --gpus 0"
    assert info["started_utc"] == "2023-11-14T22:13:20+00:00" and info["finished_utc"] > info["started_utc"]
    assert {"pandas", "dask", "xgboost", "pyarrow"} <= set(info["libraries"]) and "cudf" not in info["libraries"]


def test_report_md_says_how_to_rerun(tmp_path):
    from rapids_engage.report_md import render_markdown

    report = {"backend": "cpu", "n_workers": 1, "rows": {"train": 10, "valid": 5}, "targets": {}, "timings_s": {},
              "config": {"out": "x"}, "run": run_info(CPU, 1_700_000_000.0, "python -m rapids_engage.pipeline --set a=b|c")}
    text = render_markdown(report, {}, tmp_path)
    assert "| command | `python -m rapids_engage.pipeline --set a=b\\|c` |" in text  # a pipe cannot end the cell
    assert "`--config config.yaml` reruns it" in text and "| ran | 2023-11-14T22:13:20+00:00 to " in text
    assert "xgboost " in text
