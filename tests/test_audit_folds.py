"""The audit's out-of-fold check (:mod:`rapids_engage.audit_folds`) on a small hand-built store."""

from __future__ import annotations

import pandas as pd

from rapids_engage.layout import RECSYS


def _out_of_fold_checks(tmp_path, copies: int = 0, **te) -> list[dict]:
    """The out-of-fold checks of 600 synthetic events, their store's training rows target-encoded by the feature
    build's code as a run's (``copies``: of the first rows, the same row key at the same time in another language;
    ``te``: target-encoding settings)."""
    import dask

    from rapids_engage.audit_folds import out_of_fold_checks
    from rapids_engage.config import load_config
    from rapids_engage.data import read_events
    from rapids_engage.features import add_labels
    from rapids_engage.features.build import FeatureBuilder
    from rapids_engage.features.frames import key_name
    from rapids_engage.features.groups import only
    from rapids_engage.synthetic import SyntheticSpec, generate

    generate(tmp_path, SyntheticSpec(rows=600, days=2, seed=3))
    if copies:
        first = sorted((tmp_path / "data").rglob("*.parquet"))[0]
        rows = pd.read_parquet(first)
        other = rows.head(copies).assign(language=rows["language"].iloc[copies:2 * copies].to_numpy())
        pd.concat([rows, other]).to_parquet(first, index=False)
    cfg = load_config(overrides=[f"out={tmp_path / 'out'}", "train.targets=[like,retweet]",
                                 "features.target_encoding.keys=[[language],[engaging_user_id,language]]",
                                 *(f"features.target_encoding.{k}={v}" for k, v in te.items())])
    (tmp_path / "out").mkdir()
    time, targets = RECSYS.time, list(cfg.train.targets)
    with dask.config.set(scheduler="sync"):
        events = add_labels(read_events(tmp_path / "data"), targets)
        cutoff = int(events[time].max().compute()) - 3600
        builder = FeatureBuilder(only(cfg.features, {f"te_{key_name(k)}" for k in cfg.features.target_encoding.keys}),
                                 targets, RECSYS)
        store = builder.fit_transform(events[events[time] <= cutoff], scratch=tmp_path / "scratch").compute()
        (tmp_path / "store" / "v" / "train").mkdir(parents=True)
        store.to_parquet(tmp_path / "store" / "v" / "train" / "part.0.parquet")
        real = {"layout": RECSYS.to_dict(), "split": {"data_dir": str(tmp_path / "data"), "cutoff": cutoff},
                "store": {"path": str(tmp_path / "store"), "version": "v"}}
        return out_of_fold_checks(cfg, real)


def test_copies_of_a_row_at_the_same_time_are_not_compared_across(tmp_path):
    """30 rows repeated at the same time in another language (the row-key check passes copies): each copy's encodings
    were compared with every copy's (a merge on row key and time), a difference without a leak; rows now pair up
    within a row key and time by their encodings' order."""
    checks = _out_of_fold_checks(tmp_path, copies=30)
    assert [c["passed"] for c in checks] == [True, True], checks
    assert all(" 0 encodings differ" in c["detail"] for c in checks), checks


def test_copies_of_a_row_do_not_hide_an_in_fold_encoding(tmp_path, monkeypatch):
    """Pairing copies by their encodings' order still fails an encoding that uses the row's own fold."""
    from test_audit_leak_mutants import _in_fold_encodings

    _in_fold_encodings(monkeypatch)
    checks = _out_of_fold_checks(tmp_path, copies=30)
    assert [c["passed"] for c in checks] == [False, False], checks


def test_the_check_collects_no_rows_onto_one_process(tmp_path, refuse_rows):
    """Issue #3: the fold's fresh rows and the store's training rows were computed onto the driver (then merged); they
    are compared partition by partition where they lie, and only a row of counts per partition comes back."""
    import rapids_engage.audit_folds

    refuse_rows(rapids_engage.audit_folds, "out_of_fold_checks", [*RECSYS.row_key, RECSYS.time])
    checks = _out_of_fold_checks(tmp_path, copies=30)
    assert [c["passed"] for c in checks] == [True, True], checks
    assert checks[0]["detail"] == "127 training rows of fold 0 (of 5), their labels flipped; 0 encodings differ from the store's"
