"""Arguments that used to be ignored or misread are refused or honoured, with messages that say what to do."""

from __future__ import annotations

import pytest

from rapids_engage.config import ConfigError, load_config
from rapids_engage.pipeline import build_parser, main, predict_cluster_config


def test_a_misspelt_per_target_name_is_an_error_naming_the_target():
    with pytest.raises(ConfigError, match=r"train.per_target.qoute: no target 'qoute': did you mean 'quote'\? .*"
                                          r"\(from --set train.per_target.qoute.scale_pos_weight=10\)"):
        load_config(None, ["train.per_target.qoute.scale_pos_weight=10"])
    # a target left out of this run keeps its settings: one config, runs of some targets
    cfg = load_config(None, ["train.targets=[like]", "train.per_target.quote.scale_pos_weight=10"])
    assert cfg.train.per_target == {"quote": {"scale_pos_weight": 10}}


def test_rows_is_refused_for_data_it_cannot_size(capsys):
    assert main(["--config", "configs/hn.yaml", "--rows", "5000", "--gpus", "0"]) == 2
    assert "--rows sizes synthetic data; this config reads data.source 'table'" in capsys.readouterr().err


def test_a_subcommand_after_options_says_it_comes_first(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--gpus", "0", "features"])
    assert exc.value.code == 2
    assert "the subcommand comes first: python -m rapids_engage.pipeline features [options]" in capsys.readouterr().err


def test_subcommand_help_names_the_subcommand():
    assert build_parser("features").format_usage().startswith("usage: python -m rapids_engage.pipeline features ")
    assert "features.json" in build_parser("features").description
    assert "audit.json" in build_parser("audit").description


def test_store_flag_sets_the_feature_store():
    cfg_args = build_parser().parse_args(["--store", "runs/shared-store", "--out", "runs/a"])
    from rapids_engage.pipeline import config_from_args

    assert config_from_args(cfg_args).features.store == "runs/shared-store"


@pytest.mark.parametrize(("argv", "gpus", "address", "workers"), [
    (["--set", "cluster.scheduler_address=tcp://10.0.0.1:8786"], "auto", "tcp://10.0.0.1:8786", None),
    (["--set", "cluster.gpus=0", "--set", "cluster.n_workers=3"], "0", None, 3),
    (["--gpus", "0", "--set", "cluster.gpus=2"], "0", None, None),  # the flag wins over --set, as in a run
    (["--scheduler-address", "tcp://h:1"], "auto", "tcp://h:1", None),
])
def test_predict_cluster_settings_are_not_overwritten_by_absent_flags(argv, gpus, address, workers):
    from rapids_engage.pipeline import build_predict_parser

    args = build_predict_parser().parse_args(["--model-dir", "m", "--input", "i", "--out", "o", *argv])
    cluster = predict_cluster_config(args)
    assert (cluster.gpus, cluster.scheduler_address, cluster.n_workers) == (gpus, address, workers)
