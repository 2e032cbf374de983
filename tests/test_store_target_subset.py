"""A run of some of a store version's targets reuses it, and trains on exactly the features a fresh build gives."""

from __future__ import annotations

import copy

import pandas as pd

from rapids_engage.backend import CPU
from rapids_engage.config import load_config
from rapids_engage.data import read_events
from rapids_engage.features import add_labels
from rapids_engage.features.materialize import materialize
from rapids_engage.layout import RECSYS
from rapids_engage.schema import ROW_KEY
from rapids_engage.split import time_split
from rapids_engage.synthetic import SyntheticSpec, generate


def test_a_subset_of_targets_is_a_cache_hit_with_the_fresh_build_s_values(tmp_path):
    generate(tmp_path / "gen", SyntheticSpec(rows=3_000, days=3, seed=11))
    cfg = copy.deepcopy(load_config().features)
    cfg.target_encoding.keys, cfg.counts, cfg.history.keys = [["engaging_user_id"], ["language"]], [["engaging_user_id"]], [["engaging_user_id"]]
    data_dir = tmp_path / "gen" / "data"
    logs: list[str] = []

    def build(targets, store):
        train, valid, split = time_split(add_labels(read_events(data_dir), targets), 24)
        return materialize(cfg, tmp_path / store, data_dir, train, valid, targets, {"valid_hours": 24, "cutoff": split.cutoff},
                           CPU, RECSYS, False, logs.append)

    wide = build(["like", "reply", "quote"], "store")
    narrow = build(["reply", "quote"], "store")
    assert narrow.cache_hit and narrow.version == wide.version and "built for like, reply, quote" in logs[-1]
    fresh = build(["reply", "quote"], "fresh")
    assert not fresh.cache_hit and narrow.features == fresh.features and set(fresh.features) < set(wide.features)
    for split in ("train", "valid"):
        got = narrow.store.read_split(narrow.version, split).compute().sort_values(list(ROW_KEY)).reset_index(drop=True)
        want = fresh.store.read_split(fresh.version, split).compute().sort_values(list(ROW_KEY)).reset_index(drop=True)
        pd.testing.assert_frame_equal(got[fresh.features], want[fresh.features], check_exact=False, rtol=0, atol=1e-12)
    # a target the version lacks is no subset: built anew
    assert not build(["reply", "retweet"], "store").cache_hit
