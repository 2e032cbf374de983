"""baselines() on small frames: which baselines each target gets, and what they predict."""

from __future__ import annotations

import dask.dataframe as dd
import numpy as np
import pandas as pd
import pytest

from rapids_engage.backend import CPU
from rapids_engage.baselines import baselines
from rapids_engage.evaluate import score
from rapids_engage.layout import Layout, Target
from rapids_engage.metrics import roc_auc

LAYOUT = Layout("table", ("row_id",), "t", (Target("click", "click", "binary"), Target("n", "n", "count")),
                item="item", creator="author", group="imp")


def _frame(n: int, seed: int, start: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    item = rng.integers(0, 20, n)
    author = rng.integers(0, 8, n)
    click = (rng.random(n) < 0.1 + 0.04 * (item % 5)).astype(float)
    return pd.DataFrame({"row_id": np.arange(start, start + n), "t": 0, "imp": np.arange(n) // 10, "item": item,
                         "author": author, "click": click, "n": np.log1p(author % 4 + rng.integers(0, 2, n)),
                         "te_item_click": np.clip(0.1 + 0.04 * (item % 5) + rng.normal(0, 0.02, n), 0, 1),
                         "te_author_n": np.log1p(author % 4) + 0.5})


def test_each_target_gets_its_baselines_predicting_what_the_module_says():
    train, valid = _frame(400, 0), _frame(200, 1, start=400)
    valid.loc[valid.index[:5], "item"] = 99  # new items: no training positives
    features = ["te_item_click", "te_author_n"]
    got = baselines(CPU, dd.from_pandas(train, npartitions=2), valid, ["click", "n"], features, LAYOUT)
    assert set(got["click"]) == {"constant", "te_logreg", "popularity"}
    assert set(got["n"]) == {"constant", "te_linreg", "creator_mean"}
    assert got["click"]["constant"] == pytest.approx(score(valid, LAYOUT, "click", np.full(200, train["click"].mean())), nan_ok=True)
    clicks = valid["item"].map(train.groupby("item")["click"].sum()).fillna(0.0).to_numpy()
    assert got["click"]["popularity"] == pytest.approx(score(valid, LAYOUT, "click", clicks, probabilities=False), nan_ok=True)
    assert got["click"]["popularity"]["rce"] is None and got["click"]["te_logreg"]["rce"] is not None
    # one encoding: the probabilities grow with it (a positive coefficient), so they rank the rows as it does
    auc = roc_auc(valid["click"], valid["te_item_click"])
    assert got["click"]["te_logreg"]["auc"] == pytest.approx(auc) and auc > 0.5
    means = valid["author"].map(train.groupby("author")["n"].mean()).to_numpy()
    assert got["n"]["creator_mean"] == pytest.approx(score(valid, LAYOUT, "n", means), nan_ok=True)
    line = np.polyfit(train["te_author_n"], train["n"], 1)  # least squares on the encoded log1p means themselves
    assert got["n"]["te_linreg"] == pytest.approx(score(valid, LAYOUT, "n", np.polyval(line, valid["te_author_n"])), nan_ok=True)


def test_encodings_at_0_or_1_and_a_sample_without_positives_are_fitted_or_skipped():
    """An encoding of exactly 0 or 1 has a finite logit (clipped); no positive in the sample: no logistic fit."""
    train, valid = _frame(300, 2), _frame(100, 3, start=300)
    train["te_item_click"] = np.where(train["click"] > 0, 1.0, 0.0)
    got = baselines(CPU, dd.from_pandas(train, npartitions=2), valid, ["click"], ["te_item_click"], LAYOUT)
    assert np.isfinite(got["click"]["te_logreg"]["log_loss"])
    none = train.assign(click=0.0)
    got = baselines(CPU, dd.from_pandas(none, npartitions=2), valid, ["click"], ["te_item_click"], LAYOUT)
    assert set(got["click"]) == {"constant", "popularity"}


def test_a_new_author_s_count_is_the_training_mean_and_no_popularity_without_groups():
    train, valid = _frame(300, 4), _frame(50, 5, start=300)
    valid["author"] = 1000
    got = baselines(CPU, dd.from_pandas(train, npartitions=1), valid, ["n"], [], LAYOUT)
    assert got["n"]["creator_mean"] == pytest.approx(got["n"]["constant"], nan_ok=True)
    ungrouped = Layout("table", ("row_id",), "t", LAYOUT.targets, item="item", creator="author")
    got = baselines(CPU, dd.from_pandas(train, npartitions=1), valid, ["click"], [], ungrouped)
    assert set(got["click"]) == {"constant"}  # popularity is a ranking baseline: for targets ranked within groups


def test_a_model_of_the_mean_count_is_compared_with_the_mean_count():
    """Hacker News points with ``count:poisson`` (a model of the mean count): the constant baseline predicted
    expm1(mean log1p) = 3.5 points, the typical count, whose RMSE on counts (49.36) no mean-count model has to
    beat; the training mean 15.9 scores 48.14, against the model's 48.04. Such targets' ``constant`` and
    ``creator_mean`` now predict the (author's) mean count; a log1p model's stay the mean log1p."""
    train, valid = _frame(400, 6), _frame(200, 7, start=400)
    lazy = dd.from_pandas(train, npartitions=2)
    got = baselines(CPU, lazy, valid, ["n"], ["te_author_n"], LAYOUT, raw_counts=frozenset({"n"}))
    counts = np.expm1(train["n"])
    assert got["n"]["constant"] == pytest.approx(score(valid, LAYOUT, "n", np.full(200, np.log1p(counts.mean()))), nan_ok=True)
    assert got["n"]["constant"]["mean_pred"] == pytest.approx(counts.mean())
    per_author = valid["author"].map(counts.groupby(train["author"]).mean()).to_numpy()
    assert got["n"]["creator_mean"] == pytest.approx(score(valid, LAYOUT, "n", np.log1p(per_author)), nan_ok=True)
    log1p = baselines(CPU, lazy, valid, ["n"], ["te_author_n"], LAYOUT)
    assert log1p["n"]["constant"]["mean_pred"] == pytest.approx(np.expm1(train["n"].mean()))
    assert log1p["n"]["constant"]["mean_pred"] < counts.mean()  # the typical count is below the mean one
    assert got["n"]["te_linreg"] == pytest.approx(log1p["n"]["te_linreg"], nan_ok=True)
