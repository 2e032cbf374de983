"""A row key shared by several rows: the store's group reuse (a join on the row key) steps aside, saying why."""

from __future__ import annotations

import copy

import dask.dataframe as dd

from rapids_engage.backend import CPU
from rapids_engage.config import load_config
from rapids_engage.data import read_events
from rapids_engage.features import add_labels
from rapids_engage.features.materialize import materialize
from rapids_engage.layout import RECSYS
from rapids_engage.split import time_split
from rapids_engage.synthetic import SyntheticSpec, generate

TARGETS = ["like"]


def _config(te_keys):
    cfg = copy.deepcopy(load_config().features)
    cfg.target_encoding.keys, cfg.counts, cfg.history.keys = te_keys, [], []
    return cfg


def test_repeated_row_keys_build_in_full_and_say_why(tmp_path):
    generate(tmp_path / "gen", SyntheticSpec(rows=2_000, days=2, seed=5))
    train, valid, split = time_split(add_labels(read_events(tmp_path / "gen" / "data"), TARGETS), 24)
    repeated = dd.from_pandas(train.head(30, npartitions=-1), npartitions=1)
    train = dd.concat([train, repeated])  # 30 rows twice: a log written twice, say
    n_train = len(train)
    logs: list[str] = []

    def build(keys):
        return materialize(_config(keys), tmp_path / "store", tmp_path / "gen" / "data", train, valid, TARGETS,
                           {"valid_hours": 24, "cutoff": split.cutoff}, CPU, RECSYS, False, logs.append)

    build([["engaging_user_id"]])
    second = build([["engaging_user_id"], ["language"]])
    assert second.reused is None and second.rows["train"] == n_train  # built in full: every row once
    why = [line for line in logs if "do not line up" in line]
    assert why and "pairs each with each" in why[0] and f"{n_train:,} stored" in why[0], logs
