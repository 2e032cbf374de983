"""The feature values of a fixed input are those recorded for :data:`~rapids_engage.features.VALUES_VERSION`.

A store version is served by code of its own values version only (``FeatureStore.builder``): a change that alters a
value for the same input must raise the version, or a store built before it would be served other values than its
models were trained on. This test fails on such a change, naming the columns; then raise ``VALUES_VERSION`` and
record the new values with ``python tests/test_feature_values.py`` (which never overwrites a recorded version).

The inputs are raw files kept in ``tests/data/feature_values`` (generated once, not by the current generator):
RecSys 2021 lines through the RecSys ingest with the default feature catalog, and a CSV table with awkward text,
urls and lists through the table ingest. Each goes through ingest, split and the whole feature build, so a change
of ingest typing that alters a feature is caught too.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rapids_engage.features import VALUES_VERSION
from rapids_engage.features.build import SERVES_ALIKE

DATA = Path(__file__).resolve().parent / "data" / "feature_values"
SOURCES = ("recsys", "table")

TABLE_CONFIG = """
data:
  source: table
  path: {path}
  cache_dir: {cache}
  table:
    format: csv
    time: time
    time_format: unix
    row_id: [id]
    creator: author
    item: story
    group: page
    targets:
      comments: {{column: comments, kind: count}}
      upvoted: {{column: upvoted, kind: binary}}
    text: [title]
    url: [url]
    lists: [tags]
    list_sep: "|"
split: {{valid_hours: 24}}
features:
  target_encoding: {{keys: [[author], [title_first_word], [url_domain], [author, url_domain]]}}
  counts: [[author], [url_domain], [story]]
  history: {{keys: [[author], [url_domain]], windows: [3600, 86400]}}
train: {{targets: [comments, upvoted]}}
"""


def _config(source: str, cache: Path):
    from rapids_engage.config import load_config

    if source == "recsys":
        # event label times: those the values were recorded with (before auto, the default, resolved to engagement)
        return load_config(None, ["data.source=recsys", f"data.path={DATA / 'recsys.tsv.gz'}", f"data.cache_dir={cache}",
                                  "split.valid_hours=24", "features.history.label_time=event"])
    path = cache.parent / "table.yaml"
    path.write_text(TABLE_CONFIG.format(path=DATA / "table.csv.gz", cache=cache))
    return load_config(path)


def features(source: str, tmp: Path, splits: tuple[str, ...] = ("train", "valid")) -> pd.DataFrame:
    """Every feature of every row of the source's input (training rows out-of-fold), sorted by the row key
    (``attrs["row_key"]``); ``splits``: the rows of those splits only."""
    import dask

    from rapids_engage.data import read_events, resolve_dataset
    from rapids_engage.features import FeatureBuilder, add_labels
    from rapids_engage.split import time_split

    cfg = _config(source, tmp / "cache")
    dataset = resolve_dataset(cfg)
    layout, targets = dataset.layout, list(cfg.train.targets)
    events = add_labels(read_events(dataset.data_dir, layout), targets, layout)
    with dask.config.set(scheduler="sync"):
        train, valid, _ = time_split(events, cfg.split.valid_hours, layout.time, targets)
        builder = FeatureBuilder(cfg.features, targets, layout)
        columns = [*layout.row_key, *builder.feature_names()]
        frames = {"train": builder.fit_transform(train)[columns].compute(), "valid": builder.transform(valid)[columns].compute()}
    out = pd.concat([frames[s] for s in splits]).sort_values(list(layout.row_key)).reset_index(drop=True)
    out.attrs["row_key"] = list(layout.row_key)
    return out


def _recorded(source: str, version: int) -> Path:
    return DATA / f"v{version}-{source}.parquet"


@pytest.mark.parametrize("source", SOURCES)
def test_feature_values_change_only_with_the_values_version(source, tmp_path):


    recorded = _recorded(source, VALUES_VERSION)
    assert recorded.is_file(), (f"no values recorded for VALUES_VERSION {VALUES_VERSION}: record them with "
                                "`python tests/test_feature_values.py`")
    want, got = pd.read_parquet(recorded), features(source, tmp_path)
    assert len(got) == len(want) > 500
    assert list(got.columns) == list(want.columns), "the feature set changed: record it under a new VALUES_VERSION"
    changed = [c for c in want.columns if not _same(got[c], want[c])]
    assert not changed, (f"{len(changed)} feature(s) of the same input changed value ({', '.join(changed[:8])}): a store "
                         "built before would be served other values than its models were trained on. Raise "
                         "VALUES_VERSION (rapids_engage/features/build.py) and record the values: "
                         "`python tests/test_feature_values.py`")


@pytest.mark.parametrize("source", SOURCES)
def test_versions_served_alike_give_new_rows_the_same_values(source, tmp_path):
    """``SERVES_ALIKE`` holds: a version served alike gives the validation rows (computed as new rows are) the
    values of this version; its recorded values are kept for this test. Version 4's url and list fixes changed
    ``tags_len`` of validation rows, so version 2 (served alike before) is no longer."""
    got = features(source, tmp_path, splits=("valid",))
    key = got.attrs["row_key"]
    for version in SERVES_ALIKE:
        recorded = _recorded(source, version)
        assert recorded.is_file(), f"{recorded} is gone: keep the values of a version served alike"
        want = got[key].merge(pd.read_parquet(recorded), on=key, how="left")
        changed = [c for c in got.columns if not _same(got[c], want[c])]
        assert not changed, f"version {version} is served alike but its new rows' {', '.join(changed[:8])} differ"


def _same(a: pd.Series, b: pd.Series) -> bool:
    if a.dtype.kind == "f" or b.dtype.kind == "f":
        x, y = a.to_numpy(dtype="float64", na_value=np.nan), b.to_numpy(dtype="float64", na_value=np.nan)
        return bool(np.allclose(x, y, rtol=1e-9, atol=1e-12, equal_nan=True))
    return a.astype("string").equals(b.astype("string"))  # ints (nullable or not) and string keys, exactly


@pytest.mark.parametrize("values", [*(v for v in range(1, VALUES_VERSION) if v not in SERVES_ALIKE), VALUES_VERSION + 1])
def test_a_store_of_other_feature_values_is_not_served(tmp_path, values):
    """A store version built by code of another values version (as every version before it was recorded) is
    refused at serving with what to do; one of a version whose serving values this code computes alike
    (``SERVES_ALIKE``: only the training rows' out-of-fold values differ) and one of this code's are served.
    Since version 4 (blank urls, empty list items) no earlier version's new rows get the same values."""
    import json

    from rapids_engage.config import FeaturesConfig, section_from_dict
    from rapids_engage.features import FeatureBuilder
    from rapids_engage.store import MANIFEST, FeatureStore

    store = FeatureStore(tmp_path / "store")
    tmp = store.begin()
    (tmp / "state").mkdir()
    (tmp / "state" / "features.json").write_text(json.dumps({"targets": [], "target_encoding": [], "counts": []}))
    features = {"counts": [], "target_encoding": {"keys": []}}  # content features only: no state files
    names = FeatureBuilder(section_from_dict(FeaturesConfig, features, "test"), []).feature_names()
    store.publish(tmp, "v", {"definition": {"features": features, "values": values}, "features": names,
                             "rows": {"train": 0, "valid": 0}})
    manifest = store.version_dir("v") / MANIFEST
    with pytest.raises(ValueError, match=f"store version v holds feature values version {values}, and this "
                                         f"version of rapids_engage computes version {VALUES_VERSION}.*Rerun the pipeline"):
        store.builder("v")
    data = json.loads(manifest.read_text())
    for served in (VALUES_VERSION, *SERVES_ALIKE):
        data["definition"]["values"] = served
        manifest.write_text(json.dumps(data))
        assert store.builder("v").feature_names() == names
    del data["definition"]["values"]  # built before the values version was recorded: version 1
    manifest.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="holds feature values version 1,"):
        store.builder("v")


def _record() -> None:
    """Record this code's values under its VALUES_VERSION (never over a recorded version's)."""
    import tempfile



    for source in SOURCES:
        path = _recorded(source, VALUES_VERSION)
        if path.exists():
            sys.exit(f"{path} exists: values of a recorded version do not change; raise VALUES_VERSION first")
        with tempfile.TemporaryDirectory() as tmp:
            features(source, Path(tmp)).to_parquet(path, index=False, compression="zstd")
        print(f"recorded {path} ({path.stat().st_size:,} bytes)")


if __name__ == "__main__":
    _record()
