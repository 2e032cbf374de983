"""Arguments that used to be ignored or misread are refused or honoured, with messages that say what to do."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from rapids_engage.config import DEFAULT_CONFIG, ConfigError, load_config
from rapids_engage.data import DataError
from rapids_engage.pipeline import build_parser, main, predict_cluster_config
from rapids_engage.predict import input_files


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
    assert main(["--set", "data.source=parquet", "--rows", "5000", "--gpus", "0"]) == 2  # no path yet: not "(None)"
    assert "--rows sizes synthetic data; this config reads data.source 'parquet'\n" in capsys.readouterr().err


def test_a_subcommand_after_options_says_it_comes_first(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--gpus", "0", "features"])
    assert exc.value.code == 2
    assert "the subcommand comes first: python -m rapids_engage.pipeline features [options]" in capsys.readouterr().err


@pytest.mark.parametrize(("argv", "said"), [
    (["feature", "--gpus", "0"], "no subcommand 'feature' (did you mean features?): the subcommands are features, audit, "),
    (["train"], "no subcommand 'train': the subcommands are features, audit, ingest, predict, store; without one, the command "),
])
def test_an_unknown_subcommand_is_named_with_the_subcommands(capsys, argv, said):
    """It said "unrecognized arguments: feature --gpus 0", as if the flags were wrong too."""
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2 and said in capsys.readouterr().err


@pytest.mark.parametrize(("argv", "said"), [
    (["--gpu", "0"], "unrecognized arguments: --gpu 0 (did you mean --gpus?)"),  # argparse took it for --gpus
    (["--gpus=0", "--no-plot"], "unrecognized arguments: --no-plot (did you mean --no-plots?)"),
    (["--qiet", "--rebuld"], "(did you mean --quiet for --qiet, --rebuild for --rebuld?)"),
    (["--bogus"], "unrecognized arguments: --bogus\n"),
    (["predict", "--model-dir", "m", "--input", "i", "--out", "o", "--histry", "h"], "(did you mean --history?)"),
    (["store", "s", "--kep", "2"], "(did you mean --keep?)"),
    # a daily script passing a run's flags on to `features` was told only "unrecognized arguments: --no-plots"
    (["features", "--no-plots", "--qiet"], "unrecognized arguments: --no-plots --qiet (features draws no plots: --plots / "
     "--no-plots are a run's and audit's; leave them out here) (did you mean --quiet?)"),
])
def test_flags_are_spelt_out_and_a_mistyped_one_gets_its_closest_match(capsys, argv, said):
    """A prefix is not a flag: ``--gpu`` would stop meaning ``--gpus`` the day a ``--gpu-memory`` is added."""
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert said in capsys.readouterr().err


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


@pytest.mark.parametrize("address", ["foo", "tcp://foo", "host:abc", "http://host:8786"])
def test_a_scheduler_address_without_host_and_port_is_refused_naming_the_flag(address):
    """It stopped, after the data stage, with distributed's "missing port number in address 'foo'" alone."""
    from rapids_engage.pipeline import build_predict_parser, config_from_args

    expected = f"--scheduler-address must be a scheduler address [tcp://]HOST:PORT (tls, ucx, ws, wss too), e.g. tcp://10.0.0.1:8786, got {address!r}"
    with pytest.raises(ConfigError, match=re.escape(expected)):
        config_from_args(build_parser().parse_args(["--scheduler-address", address]))
    with pytest.raises(ConfigError, match=r"cluster.scheduler_address: expected a scheduler address \[tcp://\]HOST:PORT"):
        predict_cluster_config(build_predict_parser().parse_args(["--model-dir", "m", "--input", "i", "--out", "o",
                                                                  "--set", f"cluster.scheduler_address={address}"]))
    for fine in ("10.0.0.1:8786", "tcp://[::1]:8786", "tls://scheduler.example.com:8786"):
        assert config_from_args(build_parser().parse_args(["--scheduler-address", fine])).cluster.scheduler_address == fine


@pytest.mark.parametrize("quiet", ["process", "parameters", "callback"])
def test_a_misspelt_parameter_is_refused_in_a_quiet_process_or_with_verbosity_0(quiet):
    """XGBoost says "not used" at verbosity >= 1 only, to this thread's log callback: ``max_dept`` passed the config
    check unseen with verbosity 0 in the process (a worker's set-up in this process, a user's ``set_config``) or in
    the parameters, and after an xgboost.dask training on in-process workers (test_ingest_keep's, then
    test_cli_checks in one pytest process), which left this thread's lines going to stderr, not to Python."""
    import ctypes

    import xgboost
    from xgboost import core

    from rapids_engage.train_check import _xgboost_validates

    params, verbosity = {"max_dept": 3, "objective": "binary:logistic"}, xgboost.get_config()["verbosity"]
    dropped = ctypes.CFUNCTYPE(None, ctypes.c_char_p)(lambda message: None)
    if quiet == "process":
        xgboost.set_config(verbosity=0)
    elif quiet == "parameters":
        params["verbosity"] = 0
    else:
        core._LIB.XGBRegisterLogCallback(dropped)
    try:
        with pytest.raises(ValueError, match=r"XGBoost has no parameter 'max_dept' \(did you mean 'max_depth'\?\)"):
            _xgboost_validates(params)
    finally:
        xgboost.set_config(verbosity=verbosity)
        core._LIB.XGBRegisterLogCallback(core._LIB.callback)


@pytest.mark.parametrize(("setting", "message"), [
    ("train.per_target.like.max_dept=3", "train.per_target.like.max_dept: XGBoost has no parameter 'max_dept' (did you mean 'max_depth'?)"),
    ("train.per_target.quote.objective=binary:logistc", "train.per_target.quote.objective: XGBoost: Unknown objective function"),
    ("train.per_target.like.eval_metric=aucc", "train.per_target.like.eval_metric: XGBoost: Unknown metric function aucc"),
    ("train.subsample=2.0", "train.subsample: XGBoost: value 2 for Parameter subsample exceed bound [0,1]"),
    ("train.per_target.reply.objective=count:poisson", "train.per_target.reply.objective: objective count:poisson needs a count "
                                                       "target; 'reply' is a 0/1 target"),
    ("train.per_target.like.objective=rank:ndcg", "train.per_target.like.objective: objective rank:ndcg ranks the rows of a group"),
    ("train.per_target.like.objective=binary:logitraw", "train.per_target.like.objective: objective binary:logitraw does not "
                                                        "predict probabilities, which the metrics of the 0/1 target 'like' need"),
    ("train.per_target.reply.objective=reg:squarederror", "train.per_target.reply.objective: objective reg:squarederror does not "
                                                          "predict probabilities"),
    ("train.per_target.buy.scale_pos_weight=5", "train.per_target.buy: the data define no target 'buy' "
                                               "(targets: like, retweet, reply, quote)"),
    ("train.targets=[likes]", "train.targets names 'likes', which the data do not define: did you mean 'like'?"),
    ("features.target_encoding.keys=[[engagng_user_id]]", "features.target_encoding.keys: no column 'engagng_user_id' in the "
                                                          "data: did you mean 'engaging_user_id'? (derived keys: first_hashtag, first_domain)"),
    ("features.history.keys=[[engaging_user_id, tweet_typ]]", "features.history.keys: no column 'tweet_typ' in the data: "
                                                              "did you mean 'tweet_type'?"),
])
def test_config_is_checked_against_the_data_before_the_data_stage(tmp_path, capsys, setting, message):
    # a cache directory that cannot exist: the check must come before the data stage touches it
    argv = ["--gpus", "0", "--rows", "1000", "--out", str(tmp_path / "run"), "--set", setting,
            "--set", f"data.cache_dir={tmp_path / 'never'}"]
    assert main(argv) == 2
    err = capsys.readouterr().err.replace("\n", "")
    assert message in err and err.rstrip().endswith(f"(from --set {setting})")  # the key's origin, as at config load
    assert not (tmp_path / "never").exists()
    assert not (tmp_path / "run").exists()  # nor the output directory: it held an empty .tmp-models-<pid>


def test_a_table_without_targets_is_named_as_the_cause(tmp_path, capsys):
    """--set data.table.targets={} left the error saying only "(targets: )"."""
    argv = ["--config", "configs/hn.yaml", "--gpus", "0", "--out", str(tmp_path / "run"), "--set", "data.table.targets={}",
            "--set", f"data.path={tmp_path / 'never' / '*.csv'}", "--set", f"data.cache_dir={tmp_path / 'cache'}"]
    assert main(argv) == 2
    assert ("train.targets names 'points', which the data do not define (it defines none: data.table.targets is empty)"
            in capsys.readouterr().err.replace("\n", ""))


@pytest.mark.parametrize(("sets", "path"), [([], "features.target_encoding.keys"),
                                           (["features.target_encoding.keys=[[author]]"], "features.counts")])
def test_a_table_config_without_feature_keys_is_told_to_name_them(tmp_path, capsys, sets, path):
    """Without keys a table run got the RecSys defaults and stopped with "no column 'engaging_user_id' in the data",
    a column the user never named: the message now says the default is RecSys's and what to write instead."""
    import yaml

    config = yaml.safe_load(open("configs/hn.yaml"))
    del config["features"]
    (tmp_path / "table.yaml").write_text(yaml.safe_dump(config))
    argv = ["--config", str(tmp_path / "table.yaml"), "--gpus", "0", "--out", str(tmp_path / "run"),
            "--set", f"data.path={tmp_path / 'never' / '*.csv'}", "--set", f"data.cache_dir={tmp_path / 'cache'}"]
    assert main([*argv, *(a for s in sets for a in ("--set", s))]) == 2
    err = capsys.readouterr().err.replace("\n", "")
    assert f"{path}: no column 'engaging_user_id' in the data" in err
    assert f"; {path} was not set, and its default is the RecSys 2021 keys: name this table's keys" in err
    assert f"e.g. {path}: [[id], [author]]" in err
    assert not (tmp_path / "cache").exists()


def test_valid_xgboost_parameters_of_every_shipped_config_pass():
    from rapids_engage.backend import resolve
    from rapids_engage.data import expected_layout
    from rapids_engage.train_check import check_params

    for path, sets in [("configs/default.yaml", ["train.per_target.quote.scale_pos_weight=3"]),
                       ("configs/hn.yaml", ["train.per_target.points.objective=count:poisson",
                                            "train.per_target.comments.objective=reg:tweedie"]),
                       ("configs/mind.yaml", ["train.per_target.click.objective=rank:ndcg"])]:
        cfg = load_config(path, sets)
        check_params(cfg.train, expected_layout(cfg), resolve("0"))


def test_cluster_settings_a_run_does_not_apply_are_named():
    from rapids_engage.backend import Backend
    from rapids_engage.cluster import ignored_settings
    from rapids_engage.config import ClusterConfig

    cpu, gpu = Backend("cpu"), Backend("gpu", 2)
    assert ignored_settings(ClusterConfig(rmm_pool_size=0.8), cpu) == ["cluster.rmm_pool_size: GPU workers only, not applied to this CPU run"]
    assert ignored_settings(ClusterConfig(rmm_pool_size=0.8), gpu) == []
    # cluster.spill: false was silently ignored on CPU (dask spills above memory_limit whatever it says)
    assert ignored_settings(ClusterConfig(spill=False), cpu) == [
        "cluster.spill: GPU workers only (cuDF spilling), not applied to this CPU run: CPU workers spill above cluster.memory_limit"]
    assert ignored_settings(ClusterConfig(spill=False), gpu) == []
    assert "one worker per GPU (2)" in ignored_settings(ClusterConfig(n_workers=4), gpu)[0]
    assert ignored_settings(ClusterConfig(n_workers=4, memory_limit="8GB"), cpu) == []
    external = ClusterConfig(scheduler_address="tcp://h:8786", n_workers=4, memory_limit="8GB")
    assert ignored_settings(external, cpu) == [
        "cluster.n_workers, cluster.memory_limit: not applied, the workers of tcp://h:8786 keep their own"]
    assert ignored_settings(ClusterConfig(scheduler_address="tcp://h:8786"), gpu) == []
    kept = ignored_settings(ClusterConfig(scheduler_address="tcp://h:8786", spill=False, local_directory="/scratch"), gpu)
    assert kept[0] == "cluster.spill: not applied, the workers of tcp://h:8786 keep their own"
    assert kept[1].startswith("cluster.local_directory: the workers of tcp://h:8786 spill where they were started")


def test_balanced_class_weights_count_the_training_labels():
    import dask.dataframe as dd
    import pandas as pd

    from rapids_engage.train import weigh_classes

    labels = dd.from_pandas(pd.Series([0, 0, 0, 1, 0, 1, 0, 0], dtype="int8"), npartitions=3)
    params = {"scale_pos_weight": "balanced"}
    weigh_classes(params, lambda: (labels.sum().compute(), labels.count().compute()))
    assert params["scale_pos_weight"] == 3.0
    for totals in [(0, 8), (8, 8)]:  # one class missing: no weighting
        params = {"scale_pos_weight": "balanced"}
        weigh_classes(params, lambda totals=totals: totals)
        assert params["scale_pos_weight"] == 1.0
    params = {"scale_pos_weight": 2.5}
    weigh_classes(params, lambda: (1 / 0, 0))  # a number is kept, nothing counted
    assert params == {"scale_pos_weight": 2.5}


def test_a_booster_training_cannot_use_is_refused_naming_its_key():
    """train.per_target.<t>.booster: gblinear was refused naming train.colsample_bytree, a setting of the config file
    (XGBoost's first unused tree parameter), and with those parameters set to null it passed the check and xgboost.dask
    raised NotImplementedError at training, after the features were built. dart trains. (Left by an earlier hunt.)
    Training no longer calls xgboost.dask; the reason now is XGBoost's: no gblinear on a QuantileDMatrix (checked
    here, so the refusal goes when XGBoost changes)."""
    import numpy as np
    import xgboost as xgb

    from rapids_engage.backend import resolve
    from rapids_engage.data import expected_layout
    from rapids_engage.train_check import check_params

    for sets in (["train.per_target.like.booster=gblinear"],
                 ["train.per_target.like.booster=gblinear", "train.per_target.like={booster: gblinear, tree_method: null, "
                  "max_depth: null, subsample: null, colsample_bytree: null, min_child_weight: null, max_bin: null}"]):
        cfg = load_config("configs/default.yaml", sets)
        with pytest.raises(ConfigError, match=r"^train.per_target.like.booster: booster 'gblinear': a run trains tree boosters "
                                              r"\(gbtree, dart\) on XGBoost's QuantileDMatrix, whose binned features gblinear "
                                              r"cannot train on$"):
            check_params(cfg.train, expected_layout(cfg), resolve("0"))
    x = np.arange(20.0).reshape(10, 2)
    with pytest.raises(xgb.core.XGBoostError, match="Not implemented for `QuantileDMatrix`"):
        xgb.train({"booster": "gblinear"}, xgb.QuantileDMatrix(x, x[:, 0]), num_boost_round=1)
    for booster in ("gbtree", "dart"):
        cfg = load_config("configs/default.yaml", [f"train.per_target.like.booster={booster}"])
        check_params(cfg.train, expected_layout(cfg), resolve("0"))


def test_balanced_class_weights_are_refused_for_count_targets():
    from rapids_engage.backend import resolve
    from rapids_engage.data import expected_layout
    from rapids_engage.train_check import check_params

    cfg = load_config("configs/hn.yaml", ["train.per_target.points.scale_pos_weight=balanced"])
    with pytest.raises(ConfigError, match="train.per_target.points.scale_pos_weight: balanced weighs "
                                          "the classes of a 0/1 target; 'points' is a count target"):
        check_params(cfg.train, expected_layout(cfg), resolve("0"))


def test_ranking_a_count_target_is_refused_before_the_data_stage():
    """A rank:* objective on a count target (labels log1p(count), not 0/1 or whole relevance) passed the check and
    stopped the run mid-training with XGBoost's "label must be either 0 or positive integer" (rank:ndcg, and
    rank:pairwise through its ndcg@10 early-stopping metric) or "map can only be used with binary labels"."""
    from rapids_engage.backend import resolve
    from rapids_engage.data import expected_layout
    from rapids_engage.train_check import check_params

    for objective in ("rank:ndcg", "rank:pairwise", "rank:map"):
        cfg = load_config("configs/mind.yaml", ["data.table.targets={click: {column: click, kind: count}}",
                                                f"train.per_target.click.objective={objective}"])
        with pytest.raises(ConfigError, match=f"train.per_target.click.objective: objective {objective} ranks the rows of a "
                                              "group by a 0/1 target; 'click' is a count target"):
            check_params(cfg.train, expected_layout(cfg), resolve("0"))


def test_a_class_objective_for_a_count_target_is_refused_before_the_data_stage():
    """binary:logistic / reg:logistic on a count target passed the check and stopped the run mid-training with
    XGBoost's "base_score must be in (0,1) for the logistic loss" (multi:softprob: "label must be discrete values")."""
    from rapids_engage.backend import resolve
    from rapids_engage.data import expected_layout
    from rapids_engage.train_check import check_params

    for objective in ("binary:logistic", "reg:logistic", "binary:hinge", "multi:softprob"):
        cfg = load_config("configs/hn.yaml", [f"train.per_target.points.objective={objective}"]
                          + (["train.per_target.points.num_class=3"] if objective.startswith("multi") else []))
        with pytest.raises(ConfigError, match=f"train.per_target.points.objective: objective {objective} models classes, "
                                              "and 'points' is a count target"):
            check_params(cfg.train, expected_layout(cfg), resolve("0"))
    for fits in ("reg:squarederror", "reg:pseudohubererror", "count:poisson", "reg:tweedie"):  # and the probabilities of 0/1 targets
        check_params(load_config("configs/hn.yaml", [f"train.per_target.points.objective={fits}"]).train,
                     expected_layout(load_config("configs/hn.yaml")), resolve("0"))
    check_params(load_config(None, ["train.per_target.like.objective=reg:logistic"]).train,
                 expected_layout(load_config(None)), resolve("0"))


def test_a_table_spec_the_ingest_would_refuse_is_refused_before_the_keys_that_use_it(tmp_path, capsys):
    argv = ["--config", "configs/mind.yaml", "--gpus", "0", "--out", str(tmp_path / "run"), "--set", "data.table.user=usr_id",
            "--set", f"data.cache_dir={tmp_path / 'never'}"]
    assert main(argv) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert err.startswith("error: configs/mind.yaml: data.table.user: 'usr_id' is not one of data.table.columns")
    assert "did you mean 'user_id'? (from --set data.table.user=usr_id)" in err  # not a feature key error about user_id
    assert not (tmp_path / "never").exists()


def test_the_ingest_subcommand_names_the_config_and_the_set_of_a_table_spec_it_refuses(tmp_path, capsys):
    """The run named both (above); `ingest --set data.table.user=usr_id` said neither, though the README says an
    error about a value from --set says so."""
    argv = ["ingest", "--config", "configs/mind.yaml", "--out", str(tmp_path / "o"), "--set", "data.table.user=usr_id"]
    assert main(argv) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert err.startswith("error: configs/mind.yaml: data.table.user: 'usr_id' is not one of data.table.columns")
    assert err.endswith("did you mean 'user_id'? (from --set data.table.user=usr_id)")
    assert main(["ingest", "--config", "configs/hn.yaml", "--out", str(tmp_path / "o"), "--unlabelled",
                 "--set", "data.table.time_format=unixms"]) == 2
    assert "(from --set data.table.time_format=unixms)" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_an_ingest_that_keeps_no_row_fails_and_says_why(tmp_path, capsys):
    rows = tmp_path / "new.tsv"  # rows to score, ingested without --unlabelled
    rows.write_text("1\tU1\t11/12/2019 2:14:46 PM\tN9\tN1 N2\n")
    argv = ["ingest", "--config", "configs/mind.yaml", "--input", str(rows), "--out", str(tmp_path / "o"),
            "--set", "data.table.join=[]", "--set", "data.table.categorical=[]", "--set", "data.table.text=[]"]  # no news.tsv
    assert main(argv) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "none of the 1 input rows was ingested (bad_explode_token 1; the first: new.tsv:1 column impressions: " in err
    assert "a token without its label: 'N1', not ITEM-LABEL (rows without labels are for `ingest --unlabelled`" in err
    assert main([*argv, "--unlabelled"]) == 0


def test_an_ingest_of_empty_files_says_so_and_names_no_quarantine(tmp_path, capsys):
    (tmp_path / "empty.csv").write_text("")
    (tmp_path / "header.csv").write_text("id,title,url,author,created_at\n")
    argv = ["ingest", "--config", "configs/hn.yaml", "--input", str(tmp_path / "*.csv"), "--out", str(tmp_path / "o"), "--unlabelled"]
    assert main(argv) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert f": no input rows ({tmp_path / 'empty.csv'}, {tmp_path / 'header.csv'}: empty or a header alone)" in err
    assert "quarantine" not in err  # none was written


def test_predict_given_a_glob_matching_nothing_says_so(tmp_path, capsys):
    argv = ["predict", "--model-dir", str(tmp_path), "--input", str(tmp_path / "new" / "*.parquet"), "--out", str(tmp_path / "o"),
            "--gpus", "0"]
    assert main(argv) == 2
    assert "does not exist (a glob matching no file)" in " ".join(capsys.readouterr().err.split())


def test_predict_given_a_file_that_is_not_parquet_names_it(tmp_path, capsys):
    """A CSV named .parquet (or a cut parquet file) among the input: one line naming it, before the models load."""
    new = tmp_path / "new"
    new.mkdir()
    (new / "rows.parquet").write_text("tweet_id,engaging_user_id\n1,2\n")
    argv = ["predict", "--model-dir", str(tmp_path), "--input", str(new), "--out", str(tmp_path / "o"), "--gpus", "0"]
    assert main(argv) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert f"{new / 'rows.parquet'} is not a parquet file (no parquet footer" in err and "read by `ingest` first" in err


@pytest.mark.parametrize("damage", ["footer", "tiny"])
def test_predict_given_parquet_with_a_damaged_footer_names_it(tmp_path, capsys, damage):
    """A file ending with parquet's magic bytes whose footer is garbled (or not there at all) raised pyarrow's
    'Couldn't deserialize thrift' with a traceback, or its size error, without the file's name."""
    new = tmp_path / "new"
    new.mkdir()
    path = new / "rows.parquet"
    pd.DataFrame({"tweet_id": range(100)}).to_parquet(path)
    data = bytearray(path.read_bytes())
    data[-60:-8] = b"\xff" * 52  # the footer's metadata, its length and the magic bytes kept
    path.write_bytes(bytes(data) if damage == "footer" else b"junkPAR1")
    argv = ["predict", "--model-dir", str(tmp_path), "--input", str(new), "--out", str(tmp_path / "o"), "--gpus", "0"]
    assert main(argv) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert err.startswith(f"error: {path} is a damaged parquet file (its footer cannot be read: ") and "write it again" in err
    assert "Traceback" not in err


def test_predict_searches_a_directory_named_parquet_for_its_files(tmp_path, capsys):
    """A dataset directory named ``*.parquet`` (Spark's and dask's ``x.parquet/part-0.parquet``) under the input
    was opened as a file: 'error: [Errno 21] Is a directory'. Its files are read (here: none has rows)."""
    dataset = tmp_path / "new" / "events.parquet"
    dataset.mkdir(parents=True)
    pd.DataFrame({"tweet_id": pd.Series([], dtype="int64")}).to_parquet(dataset / "part-0.parquet")
    argv = ["predict", "--model-dir", str(tmp_path), "--input", str(tmp_path / "new"), "--out", str(tmp_path / "o"), "--gpus", "0"]
    assert main(argv) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert f"no rows to score ({dataset / 'part-0.parquet'} has 0 rows)" in err and "Is a directory" not in err


def test_predict_given_a_symlink_loop_names_it_in_one_line(tmp_path, capsys):
    """Two ``*.parquet`` links to each other under the input ended predict with a traceback (OSError: [Errno 40]);
    so did they under ``--history PATH``."""
    new = tmp_path / "new"
    new.mkdir()
    (new / "a.parquet").symlink_to("b.parquet")
    (new / "b.parquet").symlink_to("a.parquet")
    with pytest.raises(DataError, match="a.parquet cannot be read \\(Too many levels of symbolic links\\)"):
        input_files(new)  # --history PATH's files
    argv = ["predict", "--model-dir", str(tmp_path), "--input", str(new), "--out", str(tmp_path / "o"), "--gpus", "0"]
    assert main(argv) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert err.startswith(f"error: {new / 'a.parquet'} cannot be read (Too many levels of symbolic links)")
    assert "Traceback" not in err


@pytest.mark.parametrize("files", [1, 2])
def test_predict_given_parquet_of_no_rows_says_so(tmp_path, capsys, files):
    """An empty parquet file (a truncated export) was scored: 0 predictions written without a word. As `ingest`
    refuses empty input, predict names it, before the models load."""
    new = tmp_path / "new"
    new.mkdir()
    for i in range(files):
        pd.DataFrame({"tweet_id": pd.Series([], dtype="int64")}).to_parquet(new / f"part-{i}.parquet")
    given = new if files > 1 else new / "part-0.parquet"
    argv = ["predict", "--model-dir", str(tmp_path), "--input", str(given), "--out", str(tmp_path / "o"), "--gpus", "0"]
    assert main(argv) == 2
    held = "all 2 parquet files under it have" if files > 1 else f"{new / 'part-0.parquet'} has"
    assert f"input {given}: no rows to score ({held} 0 rows)" in " ".join(capsys.readouterr().err.split())
    assert not (tmp_path / "o").exists()


def test_unusable_paths_and_an_absent_scheduler_are_one_line_errors(tmp_path, capsys, monkeypatch):
    from rapids_engage import cluster, existing_cluster

    a_file = tmp_path / "a_file"
    a_file.write_text("")
    for out, message in ((a_file, "File exists"), (a_file / "sub", "Not a directory")):
        assert main(["--gpus", "0", "--rows", "1000", "--out", str(out), "--set", f"data.cache_dir={tmp_path / 'c'}"]) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err
        assert f"out: cannot create the output directory {str(out)!r}: {message} (from --out {out})" in err
    # the store and the cache too, before the run spends time: they said "[Errno 17] File exists: '...'", no key
    for flag, key, what in ((["--store", str(a_file)], "features.store", "feature store"),
                            (["--set", f"data.cache_dir={a_file}"], "data.cache_dir", "cache directory")):
        assert main(["features", "--gpus", "0", "--rows", "1000", "--out", str(tmp_path / "o"), *flag]) == 2
        err = capsys.readouterr().err
        assert f"{key}: cannot create the {what} {str(a_file)!r}: File exists (from {' '.join(flag)})" in err, err
    from rapids_engage.backend import CPU
    from rapids_engage.config import ClusterConfig

    monkeypatch.setattr(existing_cluster, "CONNECT_TIMEOUT_S", 1)  # no scheduler at that port: a ClusterError, one line at the CLI
    with pytest.raises(cluster.ClusterError, match=r"no dask scheduler answered at tcp://127.0.0.1:9 within 1 s "
                       r"\(nothing listens at 127.0.0.1:9: connection refused\)"):  # said only "Timed out trying to connect"
        with cluster.start_cluster(CPU, ClusterConfig(scheduler_address="tcp://127.0.0.1:9")):
            pass


def test_an_out_whose_models_or_plots_a_run_did_not_write_is_refused_and_kept(tmp_path, capsys):
    """A run replaces <out>/models and <out>/plots whole: --out of a directory of the user's deleted its own."""
    from rapids_engage.run_dirs import check_run_outputs

    out = tmp_path / "project"
    (out / "models").mkdir(parents=True)
    (out / "models" / "mine.pkl").write_text("mine")
    (out / "plots").mkdir()
    (out / "plots" / "fig.png").write_text("png")
    argv = ["--gpus", "0", "--rows", "1000", "--out", str(out), "--no-plots", "--set", f"data.cache_dir={tmp_path / 'c'}"]
    assert main(argv) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert f"out: {out / 'models'} holds files no run wrote (mine.pkl), and a run replaces it whole: choose another " \
           f"--out or move them (from --out {out})" in err, err
    assert (out / "models" / "mine.pkl").is_file() and (out / "plots" / "fig.png").is_file()
    (out / "models" / "mine.pkl").unlink()
    assert main(argv) == 2 and "plots holds files no run wrote (fig.png)" in " ".join(capsys.readouterr().err.split())
    (out / "plots" / "fig.png").unlink()
    for name in ("like.json", "like.meta.json"):  # a run's own: the rerun replaces them
        (out / "models" / name).write_text("{}")
    (out / "plots" / "pr_curves.png").write_text("png")
    check_run_outputs(load_config(None, ["out=" + str(out)]), out)


@pytest.mark.parametrize(("argv", "message"), [
    (["--out="], "error: --out must be a directory path, got ''"),
    (["--out", " "], "error: --out must be a directory path, got ' '"),
    (["--set", "data.cache_dir=' '"], "data.cache_dir: expected a directory path, got ' ' (from --set data.cache_dir=' ')"),
])
def test_an_empty_output_or_cache_path_is_refused(argv, message, capsys, tmp_path, monkeypatch):
    """An empty --out (an unset shell variable: --out "$OUT") ran the whole pipeline into the working directory;
    a blank one into a directory ' ' there."""
    monkeypatch.chdir(tmp_path)
    assert main(["--gpus", "0", "--rows", "1000", "--set", f"data.cache_dir={tmp_path / 'c'}", *argv]) == 2
    assert message in " ".join(capsys.readouterr().err.split())


def test_sigterm_ends_a_run_as_ctrl_c_does():
    """SIGTERM raises KeyboardInterrupt as Ctrl-C does; from either signal on, distributed logs nothing
    (the scheduler's errors about the work being cancelled); handlers and level come back after."""
    import logging
    import os
    import signal

    from rapids_engage.stop_signals import stop_signals

    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    log = logging.getLogger("distributed")
    level = log.level
    for sig in (signal.SIGTERM, signal.SIGINT):
        with stop_signals():
            with pytest.raises(KeyboardInterrupt):
                os.kill(os.getpid(), sig)
                signal.sigtimedwait([], 0.5) if hasattr(signal, "sigtimedwait") else None
            assert log.level == logging.CRITICAL
        assert log.level == level
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before



@pytest.mark.parametrize("where", ["gc callback", "__del__", "weakref callback"])
def test_a_signal_landing_where_python_drops_exceptions_still_stops_the_run(where):
    """A Ctrl-C that arrived while distributed's gc callback ran was printed as "Exception ignored in ...
    _gc_callback" and lost: the run finished with exit status 0. Such a signal is now delivered again just after."""
    import gc
    import os
    import signal
    import sys
    import time
    import weakref

    from rapids_engage.stop_signals import stop_signals

    sent = []

    def send() -> None:
        if not sent:
            sent.append(True)
            os.kill(os.getpid(), signal.SIGINT)  # the handler runs here, inside the callback / finaliser

    def callback(phase: str, info: dict) -> None:  # noqa: ARG001 - gc callback signature
        send()

    class Finalised:
        def __del__(self) -> None:
            send()

    class Plain:
        pass

    hook = sys.unraisablehook
    with stop_signals(), pytest.raises(KeyboardInterrupt):
        if where == "gc callback":
            gc.callbacks.append(callback)
            try:
                gc.collect()
            finally:
                gc.callbacks.remove(callback)
        elif where == "__del__":
            Finalised()
        else:
            target = Plain()
            refs = [weakref.ref(target, lambda r: send())]
            del target  # the weakref's callback runs here
            assert refs
        assert sent
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            time.sleep(0.01)
        pytest.fail("the signal was dropped: the run went on")
    assert sys.unraisablehook is hook


def test_a_signal_while_the_workers_start_closes_the_cluster(monkeypatch):
    """SIGTERM or Ctrl-C while the local cluster started its workers (5-35 s on a busy 2-core machine) left it half
    made: the run said "error: interrupted", then distributed's exit hook failed to close it with a traceback
    (AssertionError: Status.init, "Nanny failed to start"). The signal now takes effect once the workers are up, and
    the cluster is closed."""
    import os
    import signal

    from distributed import Nanny
    from distributed.deploy.spec import SpecCluster

    from rapids_engage.backend import CPU
    from rapids_engage.cluster import start_cluster
    from rapids_engage.config import ClusterConfig
    from rapids_engage.stop_signals import stop_signals

    start = Nanny.start_unsafe

    async def signalled(self):  # the signal lands while a worker starts
        os.kill(os.getpid(), signal.SIGTERM)
        return await start(self)

    monkeypatch.setattr(Nanny, "start_unsafe", signalled)
    before = set(SpecCluster._instances)
    with stop_signals(), pytest.raises(KeyboardInterrupt):
        with start_cluster(CPU, ClusterConfig(n_workers=1, threads_per_worker=1)):
            pytest.fail("the run went on after the signal")
    made = set(SpecCluster._instances) - before
    assert made and all(c.status.name == "closed" for c in made), [c.status for c in made]

def test_audit_takes_the_plots_flags_of_a_run():
    """The README: the audit "takes the same options as a run"; `audit --no-plots` was refused."""
    assert build_parser("audit").parse_args(["--no-plots"]).plots is False
    assert build_parser("audit").parse_args([]).plots is None
    assert not hasattr(build_parser("features").parse_args([]), "plots")  # features trains no model: no plots


def test_an_unusable_local_directory_is_one_line_naming_the_key(tmp_path):
    """It was dask's bare "[Errno 20] Not a directory: '.../spill'" once the data stage was done."""
    from rapids_engage.backend import resolve
    from rapids_engage.cluster import start_cluster
    from rapids_engage.cluster_errors import ClusterError
    from rapids_engage.config import ClusterConfig

    (tmp_path / "file").write_text("")
    with pytest.raises(ClusterError, match=r"^cluster\.local_directory: cannot write into .*file/spill \(Not a directory\)"):
        with start_cluster(resolve("0").init(), ClusterConfig(n_workers=1, local_directory=str(tmp_path / "file" / "spill"))):
            pass


def test_local_directory_expands_the_home_directory(tmp_path, monkeypatch):
    """dask took ~/spill for a directory named '~' under the working directory (train.external_memory's
    cache, expanded, went to the home directory)."""
    import distributed

    from rapids_engage.cluster import _cpu_cluster
    from rapids_engage.config import ClusterConfig

    seen = {}

    def cluster(**kwargs):
        seen.update(kwargs)
        raise RuntimeError("stop")

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(distributed, "LocalCluster", cluster)
    with pytest.raises(RuntimeError, match="stop"):
        _cpu_cluster(ClusterConfig(local_directory="~/spill"))
    assert seen["local_directory"] == str(tmp_path / "home" / "spill") and (tmp_path / "home" / "spill").is_dir()


def test_a_cluster_stalled_for_memory_is_said_once_per_spell():
    """Workers paused for memory they could not spill (cluster.memory_limit=400MB) left the run waiting for
    ever without a word; so did a cluster whose workers all died at start."""
    import time

    from rapids_engage.cluster import stalls_logged

    class Client:
        states = iter([["paused", "running"]] * 4 + [["paused", "executing"]] * 4 + [["paused", "paused"]] * 4 + [[]] * 100)

        def scheduler_info(self, n_workers=5):
            return {"workers": {str(i): {"status": "running" if s == "executing" else s,
                                         "metrics": {"task_counts": {"executing": 1} if s == "executing" else {"ready": 3}}}
                                for i, s in enumerate(next(self.states))}}

    lines: list[str] = []
    with stalls_logged(Client(), lines.append, "cluster.memory_limit 400MB", after_s=0.05, poll_s=0.02):
        time.sleep(0.5)
    assert len(lines) == 3, lines  # two spells of pauses holding every task back (not while a task ran), then no worker
    assert lines[0].startswith("1 of 2 dask worker(s) paused for memory (above 80 % of cluster.memory_limit 400MB")
    assert lines[1].startswith("2 of 2 dask worker(s) paused")
    assert "raise cluster.memory_limit or lower data.partition_rows" in lines[0]
    assert lines[2].startswith("no dask worker left")


def test_the_readme_usage_block_names_every_flag_of_the_run_and_store_parsers():
    """The usage block left out --plots and store's --quiet / --debug, which --help lists."""
    from pathlib import Path

    from rapids_engage.store_admin import build_store_parser

    readme = (Path(__file__).parent.parent / "README.md").read_text()
    block = readme.split("## Usage\n\n```\n", 1)[1].split("```", 1)[0]
    run_lines, store_lines = block.split("python -m rapids_engage.pipeline ingest --help")[0], block.split(" store DIR ", 1)[1]
    for text, parser in ((run_lines, build_parser()), (store_lines, build_store_parser())):
        assert set(re.findall(r"--[a-z-]+", text)) == set(parser.flags) - {"-h", "--help"}
    audit_line = block.split("python -m rapids_engage.pipeline audit ", 1)[1].split("\n", 1)[0]
    assert set(re.findall(r"--[a-z-]+", audit_line)) == set(build_parser("audit").flags) - set(build_parser().flags)


def test_data_settings_the_source_does_not_read_are_named():
    """A config switched to another source kept its data.table / data.path, which the run ignored silently."""
    from rapids_engage.config import load_config
    from rapids_engage.data import ignored_data_settings

    hn = load_config("configs/hn.yaml", ["data.source=synthetic", "data.strict=true"])
    assert ignored_data_settings(hn.data) == [
        "data.table: read by data.source table only, not applied to this synthetic run",
        "data.path: not read by data.source synthetic, which generates its data into data.cache_dir",
        "data.strict (--strict): raw input only (recsys, table), not applied to this synthetic run"]
    assert ignored_data_settings(load_config("configs/hn.yaml", []).data) == []
    assert ignored_data_settings(load_config(None, []).data) == []


@pytest.mark.parametrize("gpus", ["1.5", "0x1", "1_0", ""])
def test_a_gpus_flag_that_is_no_count_says_what_it_takes(gpus):
    """YAML read the flag's text: --gpus 1.5 said "--gpus must be a string or a whole number" (it was typed as
    one), 0x1 and 1_0 were taken as 1 and 10 GPUs, and an empty --gpus was "got null"."""
    from rapids_engage.pipeline import config_from_args

    with pytest.raises(ConfigError, match=f"^--gpus must be 'auto' or a whole number of GPUs >= 0, got '{gpus}'$"):
        config_from_args(build_parser().parse_args(["--gpus", gpus]))
    assert config_from_args(build_parser().parse_args(["--gpus", "2"])).cluster.gpus == "2"


def test_a_few_mib_spilled_are_said_in_mib():
    """The line after the feature stage said "dask spilled 0.00 GiB" for a run that spilled a few MiB."""
    from rapids_engage.config import ClusterConfig
    from rapids_engage.run_stages import spilled_line

    cluster = ClusterConfig(memory_limit="1GB", local_directory="/scratch")
    assert spilled_line(3 * 2**20, cluster) == ("dask spilled 3.0 MiB to disk so far (above 60 % of cluster.memory_limit 1GB "
                                                "per worker; under /scratch)")
    assert spilled_line(3 * 2**29, cluster).startswith("dask spilled 1.50 GiB to disk")


def test_a_memory_limit_share_too_small_for_a_worker_is_one_line_before_the_cluster_starts(monkeypatch):
    """The config checks sizes (at least 512MiB); a share of the machine (0.001) or `auto` over many workers
    is known only on the machine: 24 MiB a worker left both paused for memory before their first task."""
    from distributed import system

    from rapids_engage import cluster
    from rapids_engage.backend import CPU
    from rapids_engage.config import ClusterConfig

    monkeypatch.setattr(system, "MEMORY_LIMIT", 24 * 2**30)
    with pytest.raises(cluster.ClusterError, match=r"^cluster.memory_limit 0.001 is 24.6 MiB per worker on this machine "
                       r"\(2 worker\(s\)\): at least 512MiB"):
        with cluster.start_cluster(CPU, ClusterConfig(n_workers=2, memory_limit=0.001)):
            pass
    cluster.check_memory_limit(ClusterConfig(memory_limit=0.5), 2, 1)  # 12 GiB a worker
    cluster.check_memory_limit(ClusterConfig(memory_limit=0), 2, 1)  # no limit


def test_the_probe_of_an_unreachable_scheduler_never_outlasts_its_timeout(monkeypatch):
    """The probe's connect timeout did not cover the name lookup: a slow name server held the error for its own
    timeout on top of dask's 30 s."""
    import socket
    import time

    from rapids_engage import existing_cluster

    lookup = socket.getaddrinfo
    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: (time.sleep(3), lookup(*a, **k))[1])
    start = time.perf_counter()
    assert existing_cluster._unreachable("tcp://scheduler.example:8786", timeout_s=0.5) is None  # left to dask's words
    assert time.perf_counter() - start < 2


def test_why_a_scheduler_address_is_unreachable_for_tcp_and_tls_only():
    """tls:// is a TCP connection too: a refused one is named; other schemes are left to dask (mutation round 3)."""
    from rapids_engage.existing_cluster import _unreachable

    for scheme in ("tcp", "tls"):
        assert _unreachable(f"{scheme}://127.0.0.1:9") == "nothing listens at 127.0.0.1:9: connection refused"
    assert _unreachable("ucx://127.0.0.1:9") is None  # not a TCP connect


def test_whole_number_arguments_take_their_lowest_value():
    """--seed 0 is a seed (seed_int), --rows 0 not a row count (positive_int) (mutation round 3)."""
    import argparse

    from rapids_engage.cli import positive_int, seed_int

    assert (seed_int("0"), positive_int("1"), seed_int(" 7 ")) == (0, 1, 7)
    for parse, text, lowest in ((seed_int, "-1", 0), (positive_int, "0", 1)):
        with pytest.raises(argparse.ArgumentTypeError, match=rf"expected a whole number >= {lowest}, got "):
            parse(text)


@pytest.mark.parametrize(("extra", "message"), [
    (["--set", "cluster.n_workers=0"], "predict: cluster.n_workers: expected a whole number of workers >= 1 or null, got 0 "
                                       "(from --set cluster.n_workers=0)"),
    (["--scheduler-address", "foo"], "--scheduler-address must be a scheduler address [tcp://]HOST:PORT"),
    (["--gpus", "x"], "--gpus must be 'auto' or a whole number of GPUs >= 0, got 'x'"),
    (["--set", "cluster.rmm.pool=1"], "predict --set takes cluster.<key>=<value> settings only, got 'cluster.rmm.pool'"),
])
def test_predict_cluster_errors_name_the_flag_that_gave_the_value(extra, message):
    """Not "predict --set" for a value given by --gpus or --scheduler-address (mutation round 3)."""
    from rapids_engage.pipeline import build_predict_parser

    with pytest.raises(ConfigError, match="^" + re.escape(message)):
        predict_cluster_config(build_predict_parser().parse_args(["--model-dir", "m", "--input", "i", "--out", "o", *extra]))


def test_predict_into_a_directory_holding_the_users_own_predictions_is_refused_and_kept(tmp_path, capsys, monkeypatch):
    """predict replaces <out>/predictions whole: --out . in a project with a predictions/ folder of the user's
    deleted it, as a run's --out did models/ and plots/; an empty --out (unset $OUT) wrote into the working directory."""
    out = tmp_path / "project"
    (out / "predictions").mkdir(parents=True)
    (out / "predictions" / "mine.csv").write_text("mine")
    new = tmp_path / "new.parquet"
    import pandas as pd

    pd.DataFrame({"a": [1]}).to_parquet(new)
    argv = ["predict", "--model-dir", str(tmp_path / "run"), "--input", str(new), "--gpus", "0"]
    assert main([*argv, "--out", str(out)]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert f"predict: {out / 'predictions'} holds files no predict wrote (mine.csv), and predict replaces it whole: " \
           f"choose another --out or move them" in err, err
    assert (out / "predictions" / "mine.csv").is_file()
    (out / "predictions" / "mine.csv").unlink()
    for name in ("part.0.parquet", "_metadata"):  # predict's own: a rerun replaces them (and then fails on the model dir)
        (out / "predictions" / name).write_text("")
    assert main([*argv, "--out", str(out)]) == 2
    assert "holds files no predict wrote" not in capsys.readouterr().err
    monkeypatch.chdir(tmp_path)
    for blank in ("", " "):
        assert main([*argv, "--out", blank]) == 2
        assert f"predict: --out must be a directory path, got {blank!r}" in " ".join(capsys.readouterr().err.split())


@pytest.mark.parametrize(("gpus", "device", "said"), [
    ("0", "cuda", "train.per_target.like.device: 'cuda' would train on a GPU, and --gpus 0 runs on the CPU"),
    ("0", "gpu", "train.per_target.like.device: 'gpu' would train on a GPU, and --gpus 0 runs on the CPU"),
    ("1", "cpu", "train.per_target.like.device: 'cpu' would train on the CPU, and --gpus 1 runs on GPUs"),
    ("1", "cuda:0", "train.per_target.like.device: 'cuda:0' names a GPU, and dask-cuda gives each worker its own"),
])
def test_a_per_target_device_that_contradicts_the_backend_is_refused(gpus, device, said):
    """train.per_target.like.device=cuda passed the check on a --gpus 0 run (checked on a CPU booster), and XGBoost
    then trained on the CPU anyway with a warning in the workers' log where no GPU is visible, or took a GPU
    a CPU run was told to leave alone where one is; device=cpu on a GPU run trained on the CPU from the workers'
    device memory, and cuda:0 stopped the run at training ("Distributed training doesn't support selecting
    device ordinal"). The backend picks the device: the same device is accepted."""
    from rapids_engage.backend import Backend
    from rapids_engage.data import expected_layout
    from rapids_engage.train_check import check_params

    backend = Backend("cpu") if gpus == "0" else Backend("gpu", int(gpus))
    cfg = load_config(None, [f"train.per_target.like.device={device}", f"cluster.gpus={gpus}"])
    with pytest.raises(ConfigError) as err:
        check_params(cfg.train, expected_layout(cfg), backend)
    assert said in str(err.value) and "\n" not in str(err.value)
    check_params(load_config(None, [f"train.per_target.like.device={backend.xgb_device}"]).train,
                 expected_layout(cfg), backend)


def test_out_help_names_what_each_subcommand_writes_there():
    """`features --help` and `audit --help` described --out as a run's (report.json, models/): features writes
    features.json, config.yaml and the store; audit its audit.json beside the real-label run."""
    def out_help(sub):
        action = next(a for a in build_parser(sub)._actions if "--out" in a.option_strings)
        return action.help

    assert "report.json" in out_help(None) and "models/" in out_help(None)
    assert "features.json" in out_help("features") and not re.search(r"report\.json|models/|plots/", out_help("features"))
    assert "audit.json" in out_help("audit") and "shuffled-labels/" in out_help("audit")


def test_predict_input_with_some_files_of_no_rows_is_not_refused(tmp_path):
    """Only an input of no rows at all is refused: files of 0 rows beside files with rows (an export's empty
    shards) are scored (mutation round 6: refused when any file was empty)."""
    from rapids_engage.data import DataError
    from rapids_engage.predict import check_some_rows

    files = [tmp_path / "part-0.parquet", tmp_path / "part-1.parquet"]
    pd.DataFrame({"tweet_id": pd.Series([], dtype="int64")}).to_parquet(files[0])
    pd.DataFrame({"tweet_id": pd.Series([1, 2], dtype="int64")}).to_parquet(files[1])
    check_some_rows(tmp_path, files)
    check_some_rows(tmp_path, files[1:])
    with pytest.raises(DataError, match="no rows to score"):
        check_some_rows(tmp_path, files[:1])


def test_predict_into_an_out_it_cannot_write_is_refused_before_the_models_load(tmp_path, capsys):
    """predict --out on a read-only mount (or under a file) loaded the models, started the cluster and scored every
    row (a minute for 715 rows on 2 cores), then ended in "[Errno 13] Permission denied: '<out>'" naming no flag;
    it is checked first now, as a run's --out is."""
    a_file = tmp_path / "a_file"
    a_file.write_text("")
    new = tmp_path / "new.parquet"
    pd.DataFrame({"a": [1]}).to_parquet(new)
    for out, message in ((a_file, "File exists"), (a_file / "sub", "Not a directory")):
        argv = ["predict", "--model-dir", str(tmp_path / "no-run"), "--input", str(new), "--out", str(out), "--gpus", "0"]
        assert main(argv) == 2
        err = " ".join(capsys.readouterr().err.split())
        assert f"predict: --out: cannot create the output directory {str(out)!r}: {message}" in err, err


def test_the_readme_names_every_console_script():
    """pyproject.toml installs `rapids-engage` (the pipeline's main); the README never said so."""
    import tomllib
    from pathlib import Path

    root = Path(__file__).parent.parent
    scripts = tomllib.loads((root / "pyproject.toml").read_text())["project"]["scripts"]
    readme = (root / "README.md").read_text()
    assert scripts and [name for name in scripts if f"`{name} " not in readme] == []


def test_the_command_line_module_imports_first_and_pipeline_keeps_its_names():
    """The command line moved to rapids_engage.commands, which imports pipeline: imported first in a fresh process
    (a cycle fails only in that order), and pipeline's names (main, the parsers, KNOWN_ERRORS) are still its."""
    import subprocess
    import sys

    from rapids_engage.pipeline import COMMAND_NAMES

    code = ("import rapids_engage.commands as c, rapids_engage.pipeline as p;"
            f"missing = [n for n in {sorted(COMMAND_NAMES)!r} if getattr(p, n) is not getattr(c, n)];"
            "print(missing); raise SystemExit(1 if missing or not callable(p.main) else 0)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_the_readme_architecture_names_every_module_and_only_modules_that_exist():
    """config/yaml_text.py (the YAML reader refusing repeated keys) was in no row of the README's Architecture."""
    from pathlib import Path

    root = Path(__file__).parent.parent
    readme = (root / "README.md").read_text()
    section = readme.split("## Architecture\n", 1)[1].split("\n## ", 1)[0]
    modules = {p.name for p in (root / "rapids_engage").rglob("*.py") if p.name != "__init__.py"}
    named = set(re.findall(r"([a-z_]+\.py)\b", section))
    assert sorted(modules - named) == [] and sorted(named - modules) == []


def test_a_memory_limit_or_data_path_refused_by_the_run_names_the_set_that_gave_it(tmp_path, monkeypatch, capsys):
    """cluster.memory_limit refused on the machine, and data.path matching nothing, named the key but neither the
    config file nor the --set that gave it, as other config errors do."""
    from distributed import system

    monkeypatch.setattr(system, "MEMORY_LIMIT", 24 * 2**30)
    base = ["--gpus", "0", "--quiet", "--no-plots", "--out", str(tmp_path / "run"), "--set", f"data.cache_dir={tmp_path / 'cache'}"]
    assert main([*base, "--rows", "2000", "--set", "cluster.n_workers=2", "--set", "cluster.memory_limit=0.001"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert err.startswith(f"error: {DEFAULT_CONFIG}: cluster.memory_limit 0.001 is 24.6 MiB per worker on this machine")
    assert err.endswith("(from --set cluster.memory_limit=0.001)")
    missing = tmp_path / "nowhere"
    assert main([*base, "--set", "data.source=parquet", "--set", f"data.path={missing}"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert err == f"error: {DEFAULT_CONFIG}: data.path {missing} is not a directory of parquet files (from --set data.path={missing})"


@pytest.mark.parametrize(("setting", "message"), [
    ("cluster.memory_limit=0.001", "predict: cluster.memory_limit 0.001 is 24.6 MiB per worker on this machine"),
    ("cluster.local_directory=FILE/spill", "predict: cluster.local_directory: cannot write into FILE/spill (Not a directory)"),
])
def test_a_cluster_setting_refused_by_predict_names_the_set_that_gave_it(tmp_path, monkeypatch, capsys, setting, message):
    """predict's cluster settings refused when its cluster starts (cluster.memory_limit on this machine, an unusable
    cluster.local_directory) named the key but not the --set that gave it, as a run's errors do."""
    from distributed import system

    from rapids_engage import predict
    from rapids_engage.cluster import start_cluster

    monkeypatch.setattr(system, "MEMORY_LIMIT", 24 * 2**30)
    (tmp_path / "file").write_text("")
    setting, message = (t.replace("FILE", str(tmp_path / "file")) for t in (setting, message))

    def started(model_dir, input_path, out, backend, cluster_cfg, *args):  # the cluster start of a predict run
        with start_cluster(backend, cluster_cfg):
            raise AssertionError("refused before the cluster starts")

    monkeypatch.setattr(predict, "run_predict", started)
    argv = ["predict", "--model-dir", "m", "--input", "i", "--out", str(tmp_path / "out"), "--gpus", "0", "--quiet"]
    assert main([*argv, "--set", "cluster.n_workers=2", "--set", setting]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert err.startswith(f"error: {message}") and err.endswith(f"(from --set {setting})"), err


def test_ingest_help_says_quarantine_parquet_is_written_only_when_a_row_is_quarantined():
    """`ingest --help` listed quarantine.parquet among the outputs as if always written; a clean ingest writes none."""
    from rapids_engage.pipeline import build_ingest_parser

    text = " ".join(build_ingest_parser().format_help().split())
    assert "quarantine.parquet when a row is quarantined" in text


@pytest.mark.parametrize("argv0, command", [("/venv/bin/rapids-engage", "rapids-engage"),
                                            ("/x/rapids_engage/pipeline.py", "python -m rapids_engage.pipeline")])
@pytest.mark.parametrize("argv", [["predict", "--help"], ["ingest", "--help"], ["store", "--help"], ["audit", "--help"], ["--help"]])
def test_usage_names_the_command_the_user_ran(monkeypatch, capsys, argv0, command, argv):
    """The console script's usage lines name ``rapids-engage``, not ``python -m rapids_engage.pipeline``."""
    monkeypatch.setattr("sys.argv", [argv0, *argv])
    with pytest.raises(SystemExit):
        main(argv)
    usage = capsys.readouterr().out.splitlines()[0]
    sub = f" {argv[0]}" if argv[0] != "--help" else ""
    assert usage.startswith(f"usage: {command}{sub} ")
