"""A run's resolved config reruns it: config.yaml loads back to the same Config, whatever the source."""

from __future__ import annotations

from pathlib import Path

import pytest

from rapids_engage.backend import CPU
from rapids_engage.config import load_config
from rapids_engage.provenance import CONFIG_FILE, config_data, run_info, write_config

CONFIGS = sorted((Path(__file__).parent.parent / "configs").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_written_config_loads_back_equal(tmp_path, path, monkeypatch):
    cfg = load_config(path, ["train.max_depth=5", "train.per_target={like: {scale_pos_weight: 2.0}}", "cluster.gpus=0",
                             "data.cache_dir=cache"])
    written = write_config(cfg, tmp_path)
    assert written == tmp_path / CONFIG_FILE and not list(tmp_path.glob("*.part"))
    expected = config_data(cfg)
    monkeypatch.chdir(tmp_path)  # rerun from another directory: its paths point where the run's did
    again = load_config(written)
    assert config_data(again) == expected
    assert again.train.max_depth == 5 and again.train.per_target == {"like": {"scale_pos_weight": 2.0}}
    assert again.data.cache_dir == str(Path(__file__).resolve().parents[1] / "cache") and Path(again.out).is_absolute()


def test_an_existing_clusters_home_relative_local_directory_stays_the_workers(tmp_path, monkeypatch):
    """With --scheduler-address, ``cluster.local_directory: ~/xgb`` is each worker's home (6682bef), but config.yaml
    wrote it with this process's home expanded, so ``--config <out>/config.yaml`` put the workers' cache there again;
    a relative one is made absolute, as the workers read it (``train_external.worker_cache_dir``)."""
    monkeypatch.setenv("HOME", str(tmp_path / "driver-home"))
    monkeypatch.chdir(tmp_path)
    address = "cluster.scheduler_address=tcp://127.0.0.1:8786"
    assert config_data(load_config(None, [address, "cluster.local_directory=~/xgb"]))["cluster"]["local_directory"] == "~/xgb"
    assert config_data(load_config(None, [address, "cluster.local_directory=xgb"]))["cluster"]["local_directory"] == str(
        tmp_path / "xgb")
    local = config_data(load_config(None, ["cluster.local_directory=~/xgb"]))["cluster"]["local_directory"]
    assert local == str(tmp_path / "driver-home" / "xgb")  # a local cluster's: this process's home


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


@pytest.mark.slow
def test_a_run_reruns_from_its_config_and_serves_from_a_copy(tmp_path, tcp_cluster):
    import json
    import shlex
    import shutil

    from rapids_engage.pipeline import main
    from rapids_engage.predict import ModelError
    from rapids_engage.serve import Scorer

    out = tmp_path / "run"
    argv = ["--gpus", "0", "--rows", "6000", "--out", str(out), "--quiet", "--set", f"data.cache_dir={tmp_path / 'cache'}",
            "--set", "synthetic.days=3", "--set", "train.num_boost_round=8", "--set", "cluster.n_workers=1",
            "--set", "features.history.keys=[]", "--set", "train.max_depth=4", "--set", "train.targets=[like,retweet]",
            "--set", f"cluster.scheduler_address={tcp_cluster.scheduler_address}"]  # in process: the rerun's config records it
    assert main(argv) == 0
    first = json.loads((out / "report.json").read_text())
    assert first["run"]["command"] == shlex.join(["python", "-m", "rapids_engage.pipeline", *argv])
    assert first["config"]["train"]["max_depth"] == 4 and first["targets"]["like"]["objective"] == "binary:logistic"
    meta = json.loads((out / "models" / "like.meta.json").read_text())
    assert meta["params"]["max_depth"] == 4 and meta["params"]["objective"] == "binary:logistic"

    # --config <out>/config.yaml is the same run: the same store version (a cache hit) and metrics
    assert main(["--config", str(out / CONFIG_FILE), "--quiet"]) == 0
    again = json.loads((out / "report.json").read_text())
    assert again["store"]["cache_hit"] and again["store"]["version"] == first["store"]["version"]
    assert {t: m["rce"] for t, m in again["targets"].items()} == {t: m["rce"] for t, m in first["targets"].items()}

    # a copied run serves from its own store once the original is gone; without one, the error names --store
    copy = tmp_path / "copied-run"
    shutil.copytree(out, copy)
    shutil.rmtree(out / "store")
    assert load_config(copy / CONFIG_FILE).out == str(out)  # the copy's models recorded the original store path
    assert Scorer(copy).targets == ["like", "retweet"]
    shutil.move(copy / "store", tmp_path / "elsewhere")
    with pytest.raises(ModelError, match=r"point --store \(in process: Scorer\(\.\.\., store=DIR\)\) at a store holding that version"):
        Scorer(copy)
    assert Scorer(copy, store=tmp_path / "elsewhere").targets == ["like", "retweet"]


def test_library_versions_are_read_without_importing_xgboost():
    """The store manifest of the ``features`` subcommand names XGBoost's version: importing it (and
    scikit-learn) for that took ~1 s of the feature stage. The installed version is read instead, the
    one ``xgboost.__version__`` says."""
    import subprocess
    import sys

    code = ("import sys; from rapids_engage.backend import CPU; from rapids_engage.provenance import library_versions; "
            "v = library_versions(CPU); assert 'xgboost' not in sys.modules, 'imported'; import xgboost, pandas; "
            "assert v['xgboost'] == xgboost.__version__ and v['pandas'] == pandas.__version__, v")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-500:]
