"""Review of the store merges (broadcast_limit in the manifest, split counts recorded on a hit): defects found, each
pinned."""
import json

import pytest

from rapids_engage.config import FeaturesConfig, load_config
from rapids_engage.layout import RECSYS
from rapids_engage.store import MANIFEST


@pytest.fixture(scope="module")
def small_version(tmp_path_factory):
    """A version built from 3,000 synthetic rows (one target encoding and count key), and its manifest as built."""
    from rapids_engage.backend import CPU
    from rapids_engage.data import read_events
    from rapids_engage.features import add_labels
    from rapids_engage.features.materialize import materialize
    from rapids_engage.split import time_split
    from rapids_engage.synthetic import SyntheticSpec, generate

    root = tmp_path_factory.mktemp("review10")
    generate(root, SyntheticSpec(rows=3_000, days=3, seed=5))
    train, valid, split = time_split(add_labels(read_events(root / "data"), ["like"]), 24)
    cfg = load_config(None, ["features.target_encoding.keys=[[language]]", "features.counts=[[engaging_user_id]]",
                             "features.history.keys=[]"]).features
    built = materialize(cfg, root / "store", root / "data", train, valid, ["like"],
                        {"valid_hours": 24, "cutoff": split.cutoff}, CPU, RECSYS, False, lambda _: None)
    path = built.store.version_dir(built.version) / MANIFEST
    return built.store, built.version, path, path.read_text()


@pytest.mark.parametrize("limit", ["2000000", -5, 1.5, True])
def test_a_damaged_broadcast_limit_in_the_manifest_is_named_where_it_is(small_version, limit):
    """The serving builder passed the manifest's top-level ``broadcast_limit`` to the config loader, whose error named
    ``features.broadcast_limit``: in that manifest the definition's ``features.broadcast_limit``, which holds null
    (the build's limit is not in the definition), so the message pointed at a value that is not the damaged one."""
    store, version, path, text = small_version
    path.write_text(json.dumps({**json.loads(text), "broadcast_limit": limit}))
    try:
        with pytest.raises(ValueError, match=r"damaged \(key broadcast_limit is .*rebuild") as caught:
            store.builder(version)
        assert "features.broadcast_limit" not in str(caught.value)
    finally:
        path.write_text(text)
    assert store.builder(version).config.broadcast_limit == FeaturesConfig().broadcast_limit  # the build's, restored


def test_a_hit_replaces_damaged_split_counts(small_version):
    """add_split_counts (8b84b15) left any manifest holding a ``split_counts`` value alone, as recorded already: one
    that recorded_split refuses (an edit, a damaged file) was counted again on every hit and never replaced."""
    store, version, path, text = small_version
    counts = {"rows": 3_000, "valid": 900, "purged": 0}
    path.write_text(json.dumps({**json.loads(text), "split_counts": {"rows": "3000", "valid": 900, "purged": 0}}))
    try:
        assert store.add_split_counts(version, counts)
        assert json.loads(path.read_text())["split_counts"] == counts
        assert not store.add_split_counts(version, {**counts, "rows": 1})  # recorded: kept
    finally:
        path.write_text(text)
