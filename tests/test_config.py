"""Typed config: defaults, overrides, unknown keys and wrong types named with their file."""

from __future__ import annotations

import os
import re

import pytest

from rapids_engage.config import DEFAULT_CONFIG, ConfigError, load_config


def test_default_config_loads():
    cfg = load_config()
    assert cfg.data.source == "synthetic"
    assert cfg.train.targets == ["like", "retweet", "reply", "quote"]
    assert ["engaging_user_id", "engaged_with_user_id"] in cfg.features.target_encoding.keys
    assert cfg.features.target_encoding.smooth == 20.0


def test_overrides_are_typed():
    cfg = load_config(None, ["train.max_depth=6", "synthetic.rows=5000", "cluster.gpus=0", "split.valid_hours=12"])
    assert cfg.train.max_depth == 6 and cfg.synthetic.rows == 5000 and cfg.split.valid_hours == 12.0
    assert cfg.cluster.gpus == 0


def test_unknown_key_is_named_with_file(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  max_dept: 3\n")
    with pytest.raises(ConfigError, match=r"c\.yaml.*'train\.max_dept'"):
        load_config(path)


def test_unknown_section_and_override():
    with pytest.raises(ConfigError, match="'bogus'"):
        load_config(None, ["bogus.x=1"])
    with pytest.raises(ConfigError, match="'features.target_encoding.nfolds'"):
        load_config(None, ["features.target_encoding.nfolds=3"])


def test_wrong_type_is_named(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  max_depth: deep\n")
    with pytest.raises(ConfigError, match="max_depth"):
        load_config(path)


def test_missing_file_and_bad_override():
    with pytest.raises(ConfigError, match="not found"):
        load_config("/nonexistent.yaml")
    with pytest.raises(ConfigError, match="section.key=value"):
        load_config(None, ["novalue"])


@pytest.mark.parametrize("text", ["- train\n", "hello\n", "3\n"])
def test_a_config_that_is_no_mapping_is_refused_with_a_flag_too(tmp_path, text):
    """A flag (``--gpus 0``) is an override: applied to a list or a string, it was an AttributeError's traceback."""
    path = tmp_path / "c.yaml"
    path.write_text(text)
    for overrides in ([], ["cluster.gpus=0"]):
        with pytest.raises(ConfigError, match=r"c\.yaml: the top level must be a mapping of sections"):
            load_config(path, overrides)


def test_a_config_path_that_is_a_directory_or_not_text_says_so(tmp_path):
    with pytest.raises(ConfigError, match=r"^config file .* is a directory$"):
        load_config(tmp_path)
    path = tmp_path / "c.yaml"
    path.write_bytes(b"\xff\xfe\x00t")
    with pytest.raises(ConfigError, match=r"c\.yaml: not valid YAML: not UTF-8 text"):
        load_config(path)


def test_a_config_given_through_a_pipe_is_read(tmp_path):
    """``--config <(envsubst < c.yaml)`` is ``/dev/fd/63``, a pipe, not a regular file: 'config file not found'."""
    read, write = os.pipe()
    os.write(write, b"train:\n  max_depth: 3\n")
    os.close(write)
    try:
        assert load_config(f"/dev/fd/{read}").train.max_depth == 3
    finally:
        os.close(read)
    with pytest.raises(ConfigError, match=r"^config file not found: .*absent\.yaml$"):
        load_config(tmp_path / "absent.yaml")


def test_every_shipped_config_loads():
    for path in DEFAULT_CONFIG.parent.glob("*.yaml"):
        load_config(path)


def test_a_choice_out_of_its_values_lists_them():
    with pytest.raises(ConfigError, match=r"features\.intermediates: expected one of 'auto', 'memory', 'disk', got 'disc'"):
        load_config(None, ["features.intermediates=disc"])
    assert load_config(None, ["features.intermediates=disk"]).features.intermediates == "disk"


def test_a_misspelt_fold_method_is_a_config_error_naming_the_key_and_the_override():
    # it was a bare ValueError from the feature stage ("fold_method must be one of ..."), after the data and split
    with pytest.raises(ConfigError, match=r"features\.target_encoding\.fold_method: expected one of 'hash', 'contiguous', "
                                          r"'random', got 'contigous' \(from --set features\.target_encoding\.fold_method="):
        load_config(None, ["features.target_encoding.fold_method=contigous"])
    assert load_config(None, ["features.target_encoding.fold_method=random"]).features.target_encoding.fold_method == "random"


def test_a_misspelt_data_source_is_a_config_error_naming_the_key():
    # it was DataError "data.source must be ..." in the data stage, and with --rows the misleading
    # "--rows sizes synthetic data; this config reads data.source 'synthtic'"
    with pytest.raises(ConfigError, match=r"data\.source: expected one of 'synthetic', 'parquet', 'recsys', 'table', "
                                          r"got 'synthtic' \(from --set data\.source=synthtic\)"):
        load_config(None, ["data.source=synthtic"])


def test_memory_sizes_take_strings_fractions_and_bytes():
    """cluster.memory_limit / rmm_pool_size as the README documents them: "8GB", 0.8, bytes."""
    cluster = load_config(None, ["cluster.rmm_pool_size=0.8", "cluster.memory_limit=8GB"]).cluster
    assert cluster.rmm_pool_size == 0.8 and cluster.memory_limit == "8GB"
    assert load_config(None, ["cluster.memory_limit=4000000000"]).cluster.memory_limit == 4e9
    with pytest.raises(ConfigError, match="rmm_pool_size"):
        load_config(None, ["cluster.rmm_pool_size=[1]"])


@pytest.mark.parametrize("value", ["600mb", "0.1", "0", "auto", "1GB", "4000000000"])
def test_memory_limits_dask_takes_are_accepted(value):
    load_config(None, [f"cluster.memory_limit={value}"])


@pytest.mark.parametrize("value", ["foo", "-1", "-1GB", "1.5", "2", "100MB", "inf", "256MiB", "400MB"])
def test_a_memory_limit_dask_would_misread_is_one_line_naming_the_key(value):
    """Before, these reached dask: 'foo' was "error: Could not interpret 'foo' as a byte unit" (no key),
    -1 / -1GB a traceback (Nanny failed to start), 2 or 1.5 a limit of 2 / 1 bytes, and a limit below an
    idle worker's memory (100MB) workers dying at start and the run waiting for ever. 256MiB, the least allowed
    until then, gave workers paused for memory before their first task (dask pauses at 80 %, an idle worker holds
    ~225 MiB), and 400MB stalled the 30,000-row demo's training."""
    with pytest.raises(ConfigError) as err:
        load_config(None, [f"cluster.memory_limit={value}"])
    message = str(err.value)
    assert "\n" not in message and "cluster.memory_limit: expected 'auto', a size per worker of at least 512MiB" in message
    assert message.endswith(f"(from --set cluster.memory_limit={value})")


@pytest.mark.parametrize("override, expected", [
    ("data.partition_rows=0", "data.partition_rows: expected a whole number of rows >= 1 or null, got 0"),
    ("data.partition_rows=-5", "data.partition_rows: expected a whole number of rows >= 1 or null, got -5"),
    ("data.min_partition_rows=0", "data.min_partition_rows: expected a whole number of rows >= 1, 'auto' or null, got 0"),
    ("synthetic.chunk_rows=0", "synthetic.chunk_rows: expected a whole number of rows >= 1, got 0"),
    ("features.broadcast_limit=-1", "features.broadcast_limit: expected a whole number of rows >= 0 or null, got -1"),
])
def test_out_of_core_row_counts_out_of_range_are_config_errors(override, expected):
    """They failed after the data stage and the cluster's start (data.*), or named the generator's spec
    instead of the key (synthetic.chunk_rows: "rows, days, chunk_rows and n_users must be >= 1: SyntheticSpec(...)")."""
    with pytest.raises(ConfigError, match=re.escape(expected)):
        load_config(None, [override])
    for ok in ("data.partition_rows=null", "data.min_partition_rows=null", "features.broadcast_limit=0"):
        load_config(None, [ok])


def _error(tmp_path, text: str, overrides: tuple[str, ...] = ()) -> str:
    """The message of the ConfigError that a config file ``x.yaml`` holding ``text`` raises."""
    path = tmp_path / "x.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path, overrides)
    return str(info.value)


def test_a_wrong_number_names_file_key_and_value(tmp_path):
    """Not dacite's bare `could not convert string to float: 'three'`."""
    message = _error(tmp_path, "split:\n  valid_hours: three\n")
    assert message == f"{tmp_path / 'x.yaml'}: split.valid_hours: expected a number, got 'three'"
    message = _error(tmp_path, "split:\n  valid_hours: 12\n", ("split.valid_hours=abc",))
    assert message.endswith("x.yaml: split.valid_hours: expected a number, got 'abc' (from --set split.valid_hours=abc)")


def test_a_wrong_shape_of_key_lists_shows_the_value_and_the_shape(tmp_path):
    shape = "expected a list of column lists, e.g. [[engaging_user_id], [creator_id, language]]"
    for text, shown in (("author", "'author'"), ("{author: 1}", "{'author': 1}"), ("[author, language]", "['author', 'language']")):
        message = _error(tmp_path, f"features:\n  counts: {text}\n")
        assert f"x.yaml: features.counts: {shape}, got {shown}" in message
        assert "generator" not in message
    assert "features.target_encoding.keys: " + shape in _error(tmp_path, "features:\n  target_encoding:\n    keys: [[a, [b]]]\n")


def test_an_unknown_key_lists_its_section_keys_and_a_close_match(tmp_path):
    message = _error(tmp_path, "features:\n  target_encoding:\n    n_fold: 3\n")
    assert "x.yaml: unknown config key 'features.target_encoding.n_fold': did you mean 'features.target_encoding.n_folds'? " in message
    assert "(keys of features.target_encoding: keys, n_folds, smooth, fold_method, seed)" in message
    assert "top-level" not in message
    message = _error(tmp_path, "trian:\n  max_depth: 3\n")
    assert "unknown config key 'trian': did you mean 'train'? (top-level sections: out, data," in message
    assert "did you mean" not in _error(tmp_path, "cluster:\n  zzz: 1\n")


def test_overrides_are_named_only_when_they_gave_the_value(tmp_path):
    message = _error(tmp_path, "train:\n  max_depth: deep\n")
    assert "--set" not in message and "(from" not in message
    message = _error(tmp_path, "train:\n  max_depth: deep\n", ("split.valid_hours=3",))
    assert message.endswith("x.yaml: train.max_depth: expected a whole number, got 'deep'")
    assert "(from --set cluster.n_workrs=2)" in _error(tmp_path, "", ("cluster.n_workrs=2",))


def test_gpus_from_the_file_names_the_config_key_and_from_the_flag_the_flag(tmp_path):
    """Not `--gpus must be ...` for a value in the file; the flag's value still names the flag."""
    from rapids_engage.pipeline import build_parser, config_from_args

    message = _error(tmp_path, "cluster:\n  gpus: two\n")
    assert message.endswith("x.yaml: cluster.gpus: expected 'auto' or a whole number of GPUs >= 0, got 'two'")
    assert "cluster.gpus" in _error(tmp_path, "cluster:\n  gpus: -1\n")
    path = tmp_path / "ok.yaml"
    path.write_text("cluster:\n  gpus: two\n")
    for gpus, expected in (("0", "0"), ("auto", "auto")):
        assert config_from_args(build_parser().parse_args(["--config", str(path), "--gpus", gpus])).cluster.gpus == expected
    with pytest.raises(ConfigError, match=r"^--gpus must be 'auto' or a whole number of GPUs >= 0, got 'two'$"):
        config_from_args(build_parser().parse_args(["--config", str(path), "--gpus", "two"]))


def test_predict_set_unknown_and_wrong_keys_read_like_the_run():
    import argparse

    from rapids_engage.pipeline import predict_cluster_config

    def cluster(*sets):
        return predict_cluster_config(argparse.Namespace(set=list(sets), gpus="0", scheduler_address=None))

    assert cluster("cluster.n_workers=2").n_workers == 2
    with pytest.raises(ConfigError) as info:
        cluster("cluster.n_workrs=1")
    assert str(info.value).startswith("predict: unknown config key 'cluster.n_workrs': did you mean 'cluster.n_workers'? "
                                      "(keys of cluster: gpus, ")
    with pytest.raises(ConfigError, match=r"^predict: cluster\.n_workers: expected a whole number or null, got 'x' "
                       r"\(from --set cluster\.n_workers=x\)$"):
        cluster("cluster.n_workers=x")
    # a flag's value is named as the flag, as a run names it (it said "predict --set: cluster.gpus: ...")
    with pytest.raises(ConfigError, match=r"^--gpus must be 'auto' or a whole number of GPUs >= 0, got 'lots'$"):
        predict_cluster_config(argparse.Namespace(set=[], gpus="lots", scheduler_address=None))


@pytest.mark.parametrize("text, expected", [
    ("train:\n  max_depth: [3]\n", "train.max_depth: expected a whole number, got [3]"),
    ("train:\n  max_depth: 4.5\n", "train.max_depth: expected a whole number, got 4.5"),
    ("train:\n  max_depth: true\n", "train.max_depth: expected a whole number, got True"),
    ("split:\n  valid_hours: null\n", "split.valid_hours: expected a number, got null"),
    ("split: 12\n", "split: expected a section with keys valid_hours, gap_hours, got 12"),
    ("data:\n  table:\n    time_format: 123\n", "data.table.time_format: expected a string, got 123"),
    ("data:\n  table:\n    header: maybe\n", "data.table.header: expected true or false, got 'maybe'"),
    ("data:\n  table:\n    targets: {like: {column: null}}\n", "data.table.targets.like.column: expected a string, got null"),
    ("data:\n  table:\n    targets: {like: {kind: count}}\n", "data.table.targets.like.column: missing, expected a string"),
    ("data:\n  table:\n    targets: {like: liked}\n", "data.table.targets.like: expected a section with keys column, kind, got 'liked'"),
    ("data:\n  min_partition_rows: lots\n", "data.min_partition_rows: expected a whole number, 'auto' or null, got 'lots'"),
    ("cluster:\n  memory_limit: [1]\n", "cluster.memory_limit: expected a string or a number, got [1]"),
    ("features:\n  history:\n    windows: [1d]\n", "features.history.windows: expected a list of whole numbers, got ['1d']"),
])
def test_wrong_types_read_the_same_way(tmp_path, text, expected):
    assert _error(tmp_path, text) == f"{tmp_path / 'x.yaml'}: {expected}"


def test_path_flags_stay_strings():
    """--out 2024 is a directory name, not a YAML number; --scheduler-address keeps its colons."""
    from rapids_engage.pipeline import build_parser, config_from_args

    cfg = config_from_args(build_parser().parse_args(["--out", "2024", "--scheduler-address", "tcp://10.0.0.1:8786"]))
    assert cfg.out == "2024" and cfg.cluster.scheduler_address == "tcp://10.0.0.1:8786"


@pytest.mark.parametrize("setting, expected", [
    # each was accepted at load and failed later (a stage's ValueError, numpy's "expected non-negative integer",
    # a worker count dask hangs on) or was silently replaced (n_workers 0: the default)
    ("synthetic.rows=0", "synthetic.rows: expected a whole number of rows >= 1, got 0"),
    ("synthetic.days=-1", "synthetic.days: expected a whole number of days >= 1, got -1"),
    ("synthetic.seed=-1", "synthetic.seed: expected a whole number >= 0, got -1"),
    ("synthetic.n_users=0", "synthetic.n_users: expected a whole number of users >= 1 or null, got 0"),
    ("synthetic.chunk_rows=0", "synthetic.chunk_rows: expected a whole number of rows >= 1, got 0"),
    ("data.partition_rows=0", "data.partition_rows: expected a whole number of rows >= 1 or null, got 0"),
    ("data.min_partition_rows=-1", "data.min_partition_rows: expected a whole number of rows >= 1, 'auto' or null, got -1"),
    ("cluster.n_workers=0", "cluster.n_workers: expected a whole number of workers >= 1 or null, got 0"),
    ("cluster.n_workers=-1", "cluster.n_workers: expected a whole number of workers >= 1 or null, got -1"),
    ("cluster.threads_per_worker=0", "cluster.threads_per_worker: expected a whole number of threads >= 1 or null, got 0"),
    # cluster.memory_limit: test_a_memory_limit_dask_would_misread_is_one_line_naming_the_key
    ("cluster.rmm_pool_size=1.5", "cluster.rmm_pool_size: expected null, a size such as '60GB', a fraction of the GPU's "
                                  "memory in (0, 1] or a whole number of bytes, got 1.5"),
    ("split.valid_hours=0", "split.valid_hours: expected a number of hours > 0, at least one second (0.0003), got 0"),
    ("split.valid_hours=-24", "split.valid_hours: expected a number of hours > 0, at least one second (0.0003), got -24"),
    ("split.valid_hours=0.0001", "split.valid_hours: expected a number of hours > 0, at least one second (0.0003), got 0.0001"),
    ("split.gap_hours=-1", "split.gap_hours: expected a number of hours >= 0 (0: no gap), got -1"),
    ("split.gap_hours=.inf", "split.gap_hours: expected a number of hours >= 0 (0: no gap), got inf"),
    ("split.gap_hours=.nan", "split.gap_hours: expected a number of hours >= 0 (0: no gap), got nan"),
    ("features.target_encoding.n_folds=1", "features.target_encoding.n_folds: expected a whole number of folds from 2 to 127, got 1"),
    ("features.target_encoding.n_folds=200", "features.target_encoding.n_folds: expected a whole number of folds from 2 to 127, got 200"),
    ("features.target_encoding.smooth=-1", "features.target_encoding.smooth: expected a number >= 0, got -1"),
    ("features.target_encoding.seed=-1", "features.target_encoding.seed: expected a whole number >= 0, got -1"),
    ("features.target_encoding.keys=[[language], []]", "features.target_encoding.keys: expected a list of distinct, non-empty lists of distinct columns, "
                                                       "got [['language'], []]"),
    ("features.counts=[[]]", "features.counts: expected a list of distinct, non-empty lists of distinct columns, got [[]]"),
    ("features.counts=[[language, ' ']]", "features.counts: expected a list of distinct, non-empty lists of distinct columns, got [['language', ' ']]"),
    ("features.counts=[[language], [language]]",  # added twice: duplicate columns, or an unfitted encoder when partitioned
     "features.counts: expected a list of distinct, non-empty lists of distinct columns, got [['language'], ['language']]"),
    ("features.target_encoding.keys=[[language, language]]",
     "features.target_encoding.keys: expected a list of distinct, non-empty lists of distinct columns, got [['language', 'language']]"),
    ("features.history.keys=[[]]", "features.history.keys: expected a list of distinct, non-empty lists of distinct columns, got [[]]"),
    ("features.history.windows=[0]", "features.history.windows: expected a list of distinct whole numbers of seconds >= 1, got [0]"),
    ("features.history.days=[0]", "features.history.days: expected a list of distinct whole numbers of days >= 1, got [0]"),
    # a repeated span gave two features one name: the build kept one column, training failed in XGBoost
    ("features.history.windows=[86400,86400]", "features.history.windows: expected a list of distinct whole numbers of seconds >= 1, got [86400, 86400]"),
    ("features.history.days=[1,1]", "features.history.days: expected a list of distinct whole numbers of days >= 1, got [1, 1]"),
    ("features.history.label_delay=-1", "features.history.label_delay: expected a whole number of seconds >= 0, got -1"),
    ("features.history.label_time=engagment", "features.history.label_time: expected one of 'auto', 'event', 'engagement', got 'engagment'"),
    ("features.broadcast_limit=-1", "features.broadcast_limit: expected a whole number of rows >= 0 or null, got -1"),
    ("train.targets=[]", "train.targets: expected a non-empty list of distinct, non-blank target names, got []"),
    ("train.targets=[like, like]", "train.targets: expected a non-empty list of distinct, non-blank target names, got ['like', 'like']"),
    # a name of only spaces was taken, and trained
    ("train.targets=['  ']", "train.targets: expected a non-empty list of distinct, non-blank target names, got ['  ']"),
    ("train.targets=[like, '']", "train.targets: expected a non-empty list of distinct, non-blank target names, got ['like', '']"),
    ("train.num_boost_round=0", "train.num_boost_round: expected a whole number of rounds >= 1, got 0"),
    ("train.early_stopping_rounds=-1", "train.early_stopping_rounds: expected a whole number of rounds >= 0 (0: no early stopping), got -1"),
    ("train.per_target.like.num_boost_round=abc", "train.per_target.like.num_boost_round: expected a whole number of rounds >= 1, got 'abc'"),
    ("train.per_target.like.early_stopping_rounds=-5",
     "train.per_target.like.early_stopping_rounds: expected a whole number of rounds >= 0 (0: no early stopping), got -5"),
])
def test_a_value_out_of_its_range_is_one_config_error_at_load(setting, expected):
    with pytest.raises(ConfigError) as info:
        load_config(None, [setting])
    assert str(info.value) == f"{DEFAULT_CONFIG}: {expected} (from --set {setting})"


@pytest.mark.parametrize("setting", [
    "features.broadcast_limit=0", "features.broadcast_limit=null", "cluster.memory_limit=0.5", "cluster.memory_limit=8GB",
    "cluster.memory_limit=4000000000", "cluster.memory_limit=auto", "cluster.rmm_pool_size=60GB", "cluster.rmm_pool_size=0.8",
    "data.min_partition_rows=null", "data.min_partition_rows=1", "train.early_stopping_rounds=0", "synthetic.n_users=null",
    "features.history.windows=[]", "features.counts=[]", "features.target_encoding.n_folds=2", "split.valid_hours=0.5",
    "split.gap_hours=0",
    "train.per_target.like.num_boost_round=10",
])
def test_values_at_the_edge_of_their_range_load(setting):
    load_config(None, [setting])


@pytest.mark.parametrize("setting, expected", [
    ("data.cache_dir=", "data.cache_dir: expected a string, got an empty value"),
    ("out=  ", "out: expected a string, got an empty value"),
    ("split.valid_hours=", "split.valid_hours: expected a number, got an empty value"),
    ("train.targets=", "train.targets: expected a list of strings, got an empty value"),
    ("split.valid_hours=null", "split.valid_hours: expected a number, got null"),  # typed: named as typed
])
def test_an_empty_set_value_is_said_to_be_empty(setting, expected):
    """`--set data.cache_dir=` said "expected a string, got null": YAML's reading of nothing, not what was typed."""
    with pytest.raises(ConfigError) as info:
        load_config(None, [setting])
    assert str(info.value) == f"{DEFAULT_CONFIG}: {expected} (from --set {setting})"
    assert load_config(None, ["features.store="]).features.store is None  # an optional key: null, as before


@pytest.mark.parametrize("name", ["  ", ""])
def test_a_table_target_of_a_blank_name_is_refused_at_load(name):
    """A data.table target named '  ' was taken, and trained; refused as train.targets' blank names are."""
    setting = f"data.table.targets={{'{name}': {{column: c}}}}"
    with pytest.raises(ConfigError) as info:
        load_config(None, ["data.source=table", "data.table.time=t", setting])
    assert str(info.value) == (f"{DEFAULT_CONFIG}: data.table.targets: expected target names that are not blank, "
                               f"got {{'{name}': {{'column': 'c'}}}} (from --set {setting})")


@pytest.mark.parametrize("settings, expected", [
    (["train.per_target.n-comments.num_boost_round=abc"],
     "train.per_target.n-comments.num_boost_round: expected a whole number of rounds >= 1, got 'abc'"),
    (["train.targets=[like, n-comments]", "train.per_target.n-comment.max_depth=3"],
     "train.per_target.n-comment: no target 'n-comment': did you mean 'n-comments'? (train.targets: like, n-comments)"),
    (["train.targets=[like, 'n comments']", "train.per_target.n comment.max_depth=3"],
     "train.per_target.n comment: no target 'n comment': did you mean 'n comments'? (train.targets: like, n comments)"),
])
def test_an_error_about_a_target_of_any_name_names_the_set_that_gave_it(settings, expected):
    """The key an error starts with was read up to the first character no Python name has: an error about a
    hyphenated target (``n-comments``) lost its "(from --set ...)"."""
    with pytest.raises(ConfigError) as info:
        load_config(None, settings)
    assert str(info.value) == f"{DEFAULT_CONFIG}: {expected} (from --set {settings[-1]})"


def test_set_fills_a_section_left_null():
    # default.yaml's `data.table: null` made every --set data.table.<key> "--set data.table.format: 'table' is not a section"
    with pytest.raises(ConfigError, match=r"data\.table\.format: expected one of 'csv', 'tsv', 'jsonl', 'parquet', got 'xlsx' "
                                          r"\(from --set data\.table\.format=xlsx\)"):
        load_config(None, ["data.table.format=xlsx"])
    assert load_config(None, ["data.table.format=tsv"]).data.table.format == "tsv"
    with pytest.raises(ConfigError, match="'out' is not a section"):
        load_config(None, ["out.x=1"])


@pytest.mark.parametrize("setting", ['data.table.explode.sep=""', 'data.table.explode.label_sep=""', 'data.table.list_sep=""'])
def test_an_empty_separator_is_refused_at_load(setting):
    # it was pyarrow's bare "Empty separator" from the ingest
    key = setting.split("=")[0]
    with pytest.raises(ConfigError) as info:
        load_config(DEFAULT_CONFIG.parent / "mind.yaml", [setting])
    assert str(info.value).endswith(f"mind.yaml: {key}: expected a non-empty separator, got '' (from --set {setting})")



def test_every_key_is_documented_in_default_yaml_and_the_readme(config_keys):
    """README: "configs/default.yaml documents every key"; data.table's keys (list_sep, explode's sep and label_sep,
    join's) were in neither default.yaml nor README's Configuration table."""
    import re
    from pathlib import Path

    from rapids_engage.config import Config

    yaml_text = DEFAULT_CONFIG.read_text()
    readme = Path(DEFAULT_CONFIG.parent.parent / "README.md").read_text()
    section = readme[readme.index("## Configuration"):readme.index("## report.json")]
    keys = config_keys(Config)
    assert len(keys) > 70 and ("data.table.explode.label_sep", "label_sep") in keys
    assert not [path for path, name in keys if not re.search(rf"\b{name}:", yaml_text)]
    assert not [path for path, name in keys if f"`{name}`" not in section]


def test_documented_defaults_are_the_code_defaults():
    """default.yaml's values are the dataclass defaults but for the demo's, which it says differ; n_users
    was documented as rows / 20 (it is max(1000, rows / 20))."""
    from rapids_engage.config import Config, to_dict
    from rapids_engage.synthetic import SyntheticSpec

    def flat(d, prefix=""):
        return {k2: v2 for k, v in d.items() for k2, v2 in (flat(v, f"{prefix}{k}.") if isinstance(v, dict) and v else
                                                            {f"{prefix}{k}": v}).items()}

    shipped, code = flat(to_dict(load_config())), flat(to_dict(Config()))
    code["data.cache_dir"] = os.path.expanduser(code["data.cache_dir"])  # a loaded config's ~ is expanded
    assert {k for k in code if shipped[k] != code[k]} == {
        "features.target_encoding.keys", "features.counts", "features.history.keys", "train.max_depth", "train.learning_rate",
        "train.colsample_bytree", "train.max_bin", "train.num_boost_round", "train.early_stopping_rounds"}
    assert "null: max(1000, rows / 20)" in DEFAULT_CONFIG.read_text() and SyntheticSpec(rows=5000).users == 1000


def test_a_set_value_yaml_cannot_read_says_how_to_quote_it():
    """A strptime pattern starts with '%', a YAML directive: the message gives the quoted --set that works."""
    from rapids_engage.config import parse_override

    with pytest.raises(ConfigError) as info:
        parse_override("data.table.time_format=%Y-%m-%d %H:%M")
    quoted = "data.table.time_format=\"%Y-%m-%d %H:%M\""
    assert str(info.value).endswith(f"to pass it as text, quote it for YAML: --set '{quoted}'")
    assert parse_override(quoted) == ("data.table.time_format", "%Y-%m-%d %H:%M")


def test_a_home_relative_path_is_the_home_directory_for_every_reader(monkeypatch, tmp_path):
    """``~`` in a path key was read two ways: pathlib made a directory ``~`` under the working directory for
    ``out``, while pandas wrote a store's state into the home one (a traceback); now expanded at load."""
    monkeypatch.setenv("HOME", str(tmp_path))
    cfg = load_config(None, ["out=~/runs/a", "features.store=~/store", "data.cache_dir=~/cache", "cluster.local_directory=~/spill",
                             "data.source=table", "data.path=~/events.csv", "data.table.time=t",
                             "data.table.join=[{path: ~/items.tsv, key: item}]"])
    assert (cfg.out, cfg.features.store, cfg.data.cache_dir, cfg.cluster.local_directory, cfg.data.path) == (
        f"{tmp_path}/runs/a", f"{tmp_path}/store", f"{tmp_path}/cache", f"{tmp_path}/spill", f"{tmp_path}/events.csv")
    assert cfg.data.table.join[0].path == f"{tmp_path}/items.tsv"
    assert load_config(None, ["out=runs/a"]).out == "runs/a"  # a relative path stays the working directory's


@pytest.mark.parametrize("text, expected", [
    ("train:\n  max_depth: 3\n  seed: 1\n  max_depth: 4\n", "train.max_depth: given twice in one mapping (lines 2 and 4)"),
    ("train:\n  seed: 1\nsplit: {}\ntrain:\n  max_depth: 4\n", "train: given twice in one mapping (lines 1 and 4)"),
    ("train:\n  per_target:\n    like: {max_depth: 3, max_depth: 4}\n", "train.per_target.like.max_depth: given twice"),
    ("data:\n  source: table\n  table:\n    time: t\n    join:\n      - {path: a, key: k, key: j}\n",
     "data.table.join[0].key: given twice"),
])
def test_a_key_given_twice_in_a_mapping_names_the_key_and_its_lines(tmp_path, text, expected):
    """PyYAML kept the last of two equal keys silently: the first one a user edited did nothing."""
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=re.escape(f"{path}: {expected}")):
        load_config(path)


def test_a_key_given_twice_in_a_set_value_is_refused_and_merge_keys_may_override():
    with pytest.raises(ConfigError, match=re.escape("train.per_target.like.max_depth: given twice")):
        load_config(None, ["train.per_target={like: {max_depth: 3, max_depth: 4}}"])
    cfg = load_config(None, ["train.per_target={base: &b {max_depth: 3, eta: 0.1}, like: {<<: *b, max_depth: 4}}"])
    assert cfg.train.per_target["like"] == {"max_depth": 4, "eta": 0.1}


@pytest.mark.parametrize("setting, expected", [
    ("train.per_target.like.objective=null", "train.per_target.like.objective: expected an XGBoost objective name "
                                             "(e.g. binary:logistic), got null"),
    ("train.per_target.like.objective=3", "train.per_target.like.objective: expected an XGBoost objective name "
                                          "(e.g. binary:logistic), got 3"),
    ("train.per_target.like.device=null", "train.per_target.like.device: null would leave XGBoost's default device"),
])
def test_per_target_parameters_the_run_sets_take_no_null(setting, expected):
    """``objective: null`` was an AttributeError traceback before the data stage; ``device: null`` one at training
    with train.external_memory, after the features were built, and XGBoost's CPU default on a GPU run."""
    with pytest.raises(ConfigError, match=re.escape(expected) + r".*\(from --set " + re.escape(setting) + r"\)$"):
        load_config(None, [setting])
    assert load_config(None, ["train.per_target.like.max_depth=null"]).train.per_target == {"like": {"max_depth": None}}


_YAML_BOOLS = "(YAML reads on/off, yes/no, true/false as booleans and ~ as null: quote a name, 'no')"


@pytest.mark.parametrize("text, expected", [
    ("train:\n  per_target:\n    no: {max_depth: 3}\n", f"train.per_target: expected names as keys, got False {_YAML_BOOLS}"),
    ("train:\n  per_target:\n    1: {max_depth: 3}\n", "train.per_target: expected names as keys, got 1"),
    ("train:\n  per_target:\n    like: {1: 3}\n", "train.per_target.like: expected names as keys, got 1"),
    ("data:\n  table:\n    time: t\n    targets: {on: {column: x}}\n",
     f"data.table.targets: expected names as keys, got True {_YAML_BOOLS}"),
    ("train:\n  targets: [like, no]\n", f"train.targets: expected a list of strings, got ['like', False] {_YAML_BOOLS}"),
    ("data:\n  on: 3\n", f"unknown config key 'data.True' {_YAML_BOOLS}"),
])
def test_keys_and_names_yaml_made_booleans_or_numbers_are_named(tmp_path, text, expected):
    """A per_target or data.table.targets key YAML made a boolean or number (``no``, ``1``) was dacite's 'wrong value
    type for field "train.per_target" - should be "dict" instead of value ... of type "dict"'."""
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=re.escape(f"{path}: {expected}")):
        load_config(path)
    path.write_text(text.replace("no:", "'no':").replace("on:", "'on':"))
    if "'no':" in path.read_text():
        assert "no" in load_config(path).train.per_target


@pytest.mark.parametrize("setting", ["train.learning_rate=.nan", "train.learning_rate=.inf", "train.subsample=.nan",
                                     "train.colsample_bytree=-.inf", "train.min_child_weight=.inf", "train.learning_rate='nan'",
                                     "train.per_target.like.eta=.nan", "train.per_target.like.scale_pos_weight='inf'"])
def test_xgboost_numbers_that_are_nan_or_infinite_are_refused_at_load(setting):
    """XGBoost's own check took them: a learning rate of nan or inf predicted NaN for every row."""
    key = setting.split("=")[0]
    with pytest.raises(ConfigError, match=re.escape(f"{key}: expected a finite number (not nan or inf), got ")):
        load_config(None, [setting])
    assert load_config(None, [f"{key}=0.5"])



def _leaves(cls: type, prefix: str = "") -> list[tuple[str, object]]:
    """Every (dotted key, type hint) of a section that is no section itself, ``data.table``'s included: a target
    ``t`` of ``data.table.targets`` and the first side table of ``data.table.join`` (``join[0]``) stand for all."""
    import dataclasses
    import typing

    found = []
    for name, hint in typing.get_type_hints(cls).items():
        args, origin = typing.get_args(hint), typing.get_origin(hint)
        sections = [a for a in (hint, *args) if dataclasses.is_dataclass(a)]
        if origin in (dict, list) and sections:  # dict[str, TargetSpec], list[SideTableSpec]
            found += _leaves(sections[0], f"{prefix}{name}.t." if origin is dict else f"{prefix}{name}[0].")
        elif sections:
            found += _leaves(sections[0], f"{prefix}{name}.")
        else:
            found.append((prefix + name, hint))
    return found


def _leaf_keys() -> list[str]:
    from rapids_engage.config import Config

    return [key for key, _ in _leaves(Config)]


@pytest.mark.parametrize("key", _leaf_keys())
@pytest.mark.parametrize("wrong", ["{wrong: 1}", "[[1]]", "3.5"])
def test_every_key_set_to_a_wrong_type_is_an_error_naming_it(key, wrong):
    """The rule of every leaf of the config: a value of a wrong type is one error naming the key, from the file
    and from --set alike, never coerced (a mapping where a mapping is expected gets a number instead)."""
    from rapids_engage.config import Config

    hint = dict(_leaves(Config))[key]
    takes = {"{wrong: 1}": "dict", "[[1]]": "list", "3.5": "float"}[wrong]
    if takes in repr(hint) and not (takes == "list" and "list[str]" in repr(hint)):
        wrong = "3" if takes != "float" else "[[1]]"  # a value of this type may be right: another wrong one
    base = ["data.table.time=t", "data.table.targets.t.column=c"] if key.startswith("data.table.") else []
    if "join[0]" in key:
        side = {"path": "p", "key": "k", key.rsplit(".", 1)[1]: wrong}
        setting = "data.table.join=[{" + ", ".join(f"{k}: {v}" for k, v in side.items()) + "}]"
    else:
        setting = f"{key}={wrong}"
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(DEFAULT_CONFIG))}: {re.escape(key)}(\.\w+)?: expected .*"
                                          rf"\(from --set {re.escape(setting)}\)$"):
        load_config(None, [*base, setting])


@pytest.mark.parametrize("text, expected", [
    ("split:\n  valid_hours: 1:30\n", "split.valid_hours: expected a number, got '1:30'"),
    ("synthetic:\n  rows: 1:30\n", "synthetic.rows: expected a whole number, got '1:30'"),
    ("synthetic:\n  seed: 010\n", "synthetic.seed: expected a whole number, got '010'"),
    # no digit after the prefix: "invalid literal for int() with base 16: ''" was the whole error
    ("synthetic:\n  seed: 0x_\n", "synthetic.seed: expected a whole number, got '0x_'"),
    ("train:\n  seed: -0b__\n", "train.seed: expected a whole number, got '-0b__'"),
])
def test_yaml_1_1_base_60_and_octal_numbers_are_not_read_as_other_numbers(tmp_path, text, expected):
    """PyYAML read ``1:30`` as 90 (base 60: 90 hours of validation) and ``010`` as 8, silently."""
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=re.escape(f"{path}: {expected}")):
        load_config(path)
    cfg = load_config(None, ["data.table.time=007", "synthetic.rows=0x10", "synthetic.seed=1_000", "split.valid_hours=.5",
                             "train.seed=0b_1_0"])
    assert (cfg.data.table.time, cfg.synthetic.rows, cfg.synthetic.seed, cfg.split.valid_hours, cfg.train.seed) == \
        ("007", 16, 1000, 0.5, 2)


@pytest.mark.parametrize("text, expected", [
    ("train:\n\tmax_depth: 3\n", r"not valid YAML at line 2, column 1: found character '\t' that cannot start any token "
                                 "(while scanning for the next token); indent with spaces, not tabs"),
    ("train: [1\n", "not valid YAML at line 2, column 1: expected ',' or ']', but got '<stream end>'"),
    # where the list or the quote was left open is not where YAML noticed: their line was lost in the one line
    ("out: x\ntrain:\n  targets: [like, reply\n  max_depth: 3\n",
     "not valid YAML at line 4, column 12: expected ',' or ']', but got ':' (while parsing a flow sequence "
     "at line 3, column 12)"),
    ("out: 'runs/x\ntrain: {max_depth: 3}\n", "not valid YAML at line 3, column 1: found unexpected end of stream "
                                              "(while scanning a quoted scalar at line 1, column 6)"),
    ("a: &x 1\nb: &x 2\n", "not valid YAML at line 2, column 4: second occurrence (found duplicate anchor 'x'; "
                           "first occurrence at line 1, column 4)"),
])
def test_a_yaml_syntax_error_is_one_line_at_the_files_line_and_column(tmp_path, text, expected):
    """PyYAML's error took five lines (the README promises one), quoted the line and named the file '<unicode string>'."""
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value).startswith(f"{path}: {expected}") and "\n" not in str(info.value)
    assert "<unicode string>" not in str(info.value)


@pytest.mark.parametrize("text, expected", [
    ("out: runs/a\x07b\n", "at line 1, column 12: character #x0007 is not allowed in YAML"),
    ("train:\n  max_depth: 3\x00\n", "at line 2, column 15: character #x0000 is not allowed in YAML"),
])
def test_a_character_yaml_refuses_is_named_at_the_files_line_and_column(tmp_path, text, expected):
    """A control character (a NUL, a BEL pasted from a terminal) gave PyYAML's ReaderError, which has no line:
    the error said 'special characters are not allowed in "<unicode string>", position 11'."""
    path = tmp_path / "c.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value).startswith(f"{path}: not valid YAML {expected}") and "\n" not in str(info.value)
    assert "<unicode string>" not in str(info.value)


def test_yaml_numbers_are_yaml_1_2_s_and_the_others_stay_text():
    from rapids_engage.config.yaml_text import read_yaml

    values = read_yaml("[0b101, -0x1F, +12, -0, 1_000, 1.5e+3, .5, -.inf, .NaN, 007, 0o17, 1:30, 0b12, 0xG]")
    assert values[:8] == [5, -31, 12, 0, 1000, 1500.0, 0.5, float("-inf")] and values[8] != values[8]
    assert values[9:] == ["007", "0o17", "1:30", "0b12", "0xG"]


def test_an_alias_of_its_own_anchor_is_read_not_checked_for_ever():
    """A list holding itself (``&x [1, *x]``): YAML allows it; checking its keys went round it until Python's recursion limit."""
    from rapids_engage.config.yaml_text import read_yaml

    data = read_yaml("a: &x [1, {b: *x}]\n")
    assert data["a"][1]["b"] is data["a"]


def test_a_key_given_twice_in_a_merged_mapping_written_in_place_is_refused():
    from rapids_engage.config.yaml_text import read_yaml

    with pytest.raises(ValueError, match=re.escape("train.max_depth: given twice in one mapping (lines 2 and 2)")):
        read_yaml("train:\n  <<: {max_depth: 3, max_depth: 4}\n  seed: 1\n")


def test_a_key_yaml_cannot_hash_is_yaml_s_own_error_not_a_type_error():
    """A complex key (``? [a, b]``) twice: PyYAML's "found unhashable key", which the config reports as invalid YAML."""
    import yaml

    from rapids_engage.config.yaml_text import read_yaml

    with pytest.raises(yaml.constructor.ConstructorError, match="found unhashable key"):
        read_yaml("? [a, b]\n: 1\n? [a, b]\n: 2\n")


def test_a_set_of_a_key_yaml_shares_through_an_alias_sets_that_key_alone(tmp_path):
    """``retweet: *base`` is the very mapping ``like: &base`` is: ``--set train.per_target.like.max_depth=3`` set
    retweet's max_depth too, without a word."""
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  per_target:\n    like: &base\n      max_depth: 4\n    retweet: *base\n")
    cfg = load_config(path, ["train.per_target.like.max_depth=3", "train.per_target.retweet.subsample=0.5"])
    assert cfg.train.per_target == {"like": {"max_depth": 3}, "retweet": {"max_depth": 4, "subsample": 0.5}}
