"""Every config key does what README says: documented in its section's row, read outside ``config/``, and in a store
version's definition exactly when it changes the stored values (in: another version, never stale features from the
cache; out: no needless rebuild)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from rapids_engage.config import Config, FeaturesConfig, load_config
from rapids_engage.features.materialize import store_definition
from rapids_engage.layout import RECSYS
from rapids_engage.store import version_id

ROOT = Path(__file__).parent.parent



def test_every_key_is_named_in_its_own_section_s_row_of_the_readme_table(config_keys):
    """README's Configuration table has a row per section; a key must be in its section's row (the check over the
    whole section, test_config.py, let a key documented in another section's row pass)."""
    readme = (ROOT / "README.md").read_text()
    rows = dict(re.findall(r"^\| `([\w.]+)` \| (.*) \|$", readme[readme.index("## Configuration"):readme.index("## report.json")],
                           re.MULTILINE))
    assert {"data", "data.table", "synthetic", "cluster", "split", "features", "train"} <= set(rows)
    missing = []
    for path, name in config_keys(Config):
        parts = path.split(".")
        row = next((".".join(parts[:i]) for i in range(len(parts) - 1, 0, -1) if ".".join(parts[:i]) in rows), None)
        if row is not None and f"`{name}`" not in rows[row]:
            missing.append(path)
    assert missing == []


def test_every_key_is_read_outside_the_config_package(config_keys):
    """A key parsed and checked but read nowhere is a setting that silently does nothing: each field's name is read as
    an attribute (``.name``) by some module of rapids_engage outside ``config/``."""
    sources = "\n".join(p.read_text() for p in (ROOT / "rapids_engage").rglob("*.py") if "config" not in p.parent.name)
    unread = [path for path, name in config_keys(Config) if not re.search(rf"\.{name}\b", sources)]
    assert unread == []


#: A features.* key -> a --set that changes it from the base config below. Every key of FeaturesConfig is here: a new
#: key must be put in VALUE_KEYS (it changes the features) or not (it changes where or how they are built only).
CHANGES = {
    "target_encoding": "features.target_encoding.keys=[[language]]",
    "target_encoding.keys": "features.target_encoding.keys=[[language]]",
    "target_encoding.n_folds": "features.target_encoding.n_folds=3",
    "target_encoding.smooth": "features.target_encoding.smooth=5",
    "target_encoding.fold_method": "features.target_encoding.fold_method=random",
    "target_encoding.seed": "features.target_encoding.seed=3",
    "counts": "features.counts=[[language]]",
    "history": "features.history.keys=[]",
    "history.keys": "features.history.keys=[[engaged_with_user_id]]",
    "history.windows": "features.history.windows=[3600]",
    "history.days": "features.history.days=[2]",
    "history.rates": "features.history.rates=false",
    "history.label_delay": "features.history.label_delay=60",
    "history.label_time": "features.history.label_time=event",
    "session": "features.session.enabled=false",
    "session.enabled": "features.session.enabled=false",
    "session.key": "features.session.key=[engaged_with_user_id]",
    "session.gap": "features.session.gap=60",
    "content": "features.content=false",
    "daily_counts": "features.daily_counts=false",
    "store": "features.store=/elsewhere",
    "broadcast_limit": "features.broadcast_limit=0",
    "intermediates": "features.intermediates=memory",
    "keep_versions": "features.keep_versions=2",
}
#: The keys whose change changes the stored features; the others (where the store is, how key tables meet the rows,
#: where intermediates live, how many versions are kept) give the same values (tests/test_feature_invariance.py).
VALUE_KEYS = {k for k in CHANGES if k not in ("store", "broadcast_limit", "intermediates", "keep_versions")}
#: The base: the demo's features with session features on (so that their keys count).
BASE = ["features.session.enabled=true"]


def _version(tmp_path: Path, overrides: list[str]) -> str:
    cfg = load_config(None, [*BASE, *overrides])
    split = {"valid_hours": cfg.split.valid_hours, "cutoff": 0}
    return version_id(store_definition(cfg.features, tmp_path / "store", tmp_path, list(cfg.train.targets), split, RECSYS,
                                       tmp_path / "digests", lambda _: None))


def test_every_features_key_is_classified(config_keys):
    assert set(CHANGES) == {path for path, _ in config_keys(FeaturesConfig)}


@pytest.mark.parametrize("key", list(CHANGES))
def test_a_features_key_is_in_the_store_version_exactly_when_it_changes_the_values(tmp_path, key):
    changed = _version(tmp_path, [CHANGES[key]]) != _version(tmp_path, [])
    assert changed == (key in VALUE_KEYS)


@pytest.mark.parametrize("override", ["split.valid_hours=12", "split.gap_hours=2"])
def test_a_split_key_is_in_the_store_version(override):
    """The split's keys enter a version's definition (``split``): another window is another training split."""
    from rapids_engage.run_stages import _split_def

    cutoff = 1_000_000
    assert _split_def(load_config(None, [override]), cutoff, None) != _split_def(load_config(), cutoff, None)



@pytest.mark.parametrize("limit", [0, 1_000, None])
def test_serving_keeps_the_broadcast_limit_the_version_was_built_with(small_split, tmp_path, limit):
    """The definition holds ``broadcast_limit: null`` (it changes no value, so no version of its own), and the serving
    builder (predict, FeatureStore.transform) was loaded from it: null, "broadcast all", whatever the build was given
    (the default 2,000,000 too), so a batch's per-day count tables were always gathered on the driver."""
    from rapids_engage.backend import CPU
    from rapids_engage.features.materialize import materialize

    data_dir, train, valid, split = small_split
    cfg = load_config(None, ["features.target_encoding.keys=[[language]]", "features.counts=[[engaging_user_id]]",
                             "features.history.keys=[]"]).features
    cfg.broadcast_limit = limit
    built = materialize(cfg, tmp_path / "store", data_dir, train, valid, ["like"], split, CPU, RECSYS, False, lambda _: None)
    assert built.store.builder(built.version).config.broadcast_limit == limit
    if limit is None:  # a version built before the manifest kept it: the default, not the definition's null
        import json

        from rapids_engage.store import MANIFEST

        path = built.store.version_dir(built.version) / MANIFEST
        manifest = json.loads(path.read_text())
        del manifest["broadcast_limit"]
        path.write_text(json.dumps(manifest))
        assert built.store.builder(built.version).config.broadcast_limit == FeaturesConfig().broadcast_limit


@pytest.mark.parametrize(("unused", "change"), [
    ("features.history.keys=[]", "features.history.windows=[3600]"),
    ("features.history.keys=[]", "features.history.days=[2]"),
    ("features.history.keys=[]", "features.history.rates=false"),
    ("features.history.keys=[]", "features.history.label_delay=60"),
    ("features.target_encoding.keys=[]", "features.target_encoding.n_folds=3"),
    ("features.target_encoding.keys=[]", "features.target_encoding.smooth=5"),
    ("features.target_encoding.keys=[]", "features.target_encoding.fold_method=contiguous"),
    ("features.target_encoding.keys=[]", "features.target_encoding.seed=3"),
    ("features.target_encoding.fold_method=contiguous", "features.target_encoding.seed=3"),  # contiguous folds draw nothing
    ("features.counts=[]", "features.daily_counts=false"),
])
def test_a_parameter_of_a_group_the_config_leaves_out_is_not_in_the_store_version(tmp_path, unused, change):
    """History windows without history keys (a table config without them), target-encoding parameters without
    target-encoding keys, the seed of contiguous folds, daily counts without count keys: no value changes, and each
    was another version id, built again (the same columns, a new version directory)."""
    assert _version(tmp_path, [unused, change]) == _version(tmp_path, [unused])


def test_a_parameter_no_value_depends_on_recomputes_no_feature_group(small_split, tmp_path):
    """The groups' signatures hold the config as the version's definition does (groups.values_config): a later build
    with another feature changed reuses the groups of an earlier one whose only difference is such a parameter (the
    seed of contiguous folds: every target-encoding group was recomputed)."""
    from rapids_engage.backend import CPU
    from rapids_engage.features.materialize import materialize

    data_dir, train, valid, split = small_split
    base = ["features.target_encoding.keys=[[language]]", "features.target_encoding.fold_method=contiguous",
            "features.counts=[[engaging_user_id]]", "features.history.keys=[]"]
    first = materialize(load_config(None, base).features, tmp_path, data_dir, train, valid, ["like"], split, CPU, RECSYS,
                        False, lambda _: None)
    later = load_config(None, [*base, "features.target_encoding.seed=3", "features.counts=[[engaging_user_id], [language]]"])
    built = materialize(later.features, tmp_path, data_dir, train, valid, ["like"], split, CPU, RECSYS, False, lambda _: None)
    assert built.reused == {"from": first.version, "groups": ["cnt_engaging_user_id", "content", "te_language"]}


@pytest.mark.parametrize("spelled", [
    lambda f: setattr(f.target_encoding, "smooth", 20),  # YAML's 20 is loaded as 20.0; a library user's stays an int
    lambda f: setattr(f.session, "key", ["engaging_user_id"]),  # the user column null stands for, named
    lambda f: setattr(f.session, "key", []),  # empty: the default too
], ids=["smooth-int", "session-key-named", "session-key-empty"])
def test_a_config_spelled_otherwise_in_python_has_the_version_and_group_signatures_of_its_yaml(tmp_path, spelled):
    """A FeaturesConfig built in Python (the library's FeatureStore.materialize) with an int where YAML gives a float, or
    the session key written as the default it stands for, was another version and recomputed its groups."""
    from rapids_engage.features.materialize import group_signatures

    def both(features: FeaturesConfig) -> tuple[str, dict]:
        definition = store_definition(features, tmp_path / "store", tmp_path, ["like"], {"valid_hours": 24, "cutoff": 0},
                                      RECSYS, tmp_path / "digests", lambda _: None)
        return version_id(definition), group_signatures(features, ["like"], RECSYS)

    yaml = load_config(None, BASE).features
    python = load_config(None, BASE).features
    spelled(python)
    assert both(python) == both(yaml)


@pytest.mark.parametrize("own_damaged", [False, True])
def test_a_version_an_earlier_release_built_under_a_parameter_no_value_depends_on_is_a_hit(small_split, tmp_path,
                                                                                           own_damaged):
    """Releases before 2026-12-05 hashed such a parameter as configured (the seed of contiguous folds: 3): that
    version, its manifest as they wrote it, was missed by this release and built again under the id of seed 0. With
    this release's id damaged beside it, the log said "damaged; rebuilding it", then served the earlier one."""
    import json
    import shutil

    from rapids_engage.backend import CPU
    from rapids_engage.features.materialize import materialize
    from rapids_engage.store import MANIFEST

    data_dir, train, valid, split = small_split
    cfg = load_config(None, ["features.target_encoding.keys=[[language]]", "features.target_encoding.fold_method=contiguous",
                             "features.target_encoding.seed=3", "features.counts=[]", "features.history.keys=[]"]).features
    store = tmp_path / "store"
    built = materialize(cfg, store, data_dir, train, valid, ["like"], split, CPU, RECSYS, False, lambda _: None)
    definition = store_definition(cfg, store, data_dir, ["like"], split, RECSYS, None, lambda _: None)
    definition["features"]["target_encoding"]["seed"] = 3  # as the earlier release's definition held it
    earlier = version_id(definition)
    manifest = json.loads((store / built.version / MANIFEST).read_text())
    manifest["definition"]["features"]["target_encoding"]["seed"] = 3
    manifest["version"] = earlier
    shutil.move(store / built.version, store / earlier)
    (store / earlier / MANIFEST).write_text(json.dumps(manifest))
    if own_damaged:
        (store / built.version).mkdir()
        (store / built.version / MANIFEST).write_text("{")
    lines = []
    found = materialize(cfg, store, data_dir, train, valid, ["like"], split, CPU, RECSYS, False, lines.append)
    assert (found.version, found.cache_hit) == (earlier, True), lines
    assert sorted(p.name for p in store.iterdir() if not p.name.startswith(".")) == sorted(
        [earlier, *([built.version] if own_damaged else [])])
    said = [line for line in lines if "is damaged" in line]
    assert len(said) == own_damaged, lines
    assert all(line.startswith(f"feature store: version {built.version} is damaged (") and line.endswith("); not used")
               for line in said), said


def test_every_version_id_the_morning_release_gave_is_found(tmp_path):
    """The ids 7b4bbfe gave store versions of these configs (tests/data/upgrade, written by that code): each is this
    release's id, or the earlier-release id materialize also looks for; else an upgraded run builds its store again."""
    import json

    from rapids_engage.features.materialize import earlier_release_id

    recorded = json.loads((Path(__file__).parent / "data" / "upgrade" / "version_ids_7b4bbfe.json").read_text())["ids"]
    (tmp_path / "data").mkdir()
    for case, old_id in recorded.items():
        cfg = load_config(None, [] if case == "(defaults)" else case.split(" "))
        definition = store_definition(cfg.features, tmp_path / "store", tmp_path / "data", list(cfg.train.targets),
                                      {"valid_hours": cfg.split.valid_hours, "cutoff": 0}, RECSYS, tmp_path / "digests",
                                      lambda _: None)
        assert old_id in (version_id(definition), earlier_release_id(cfg.features, definition, RECSYS)), case
