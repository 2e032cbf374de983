"""Typed config: defaults, overrides, unknown keys and wrong types named with their file."""

from __future__ import annotations

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


def test_every_shipped_config_loads():
    for path in DEFAULT_CONFIG.parent.glob("*.yaml"):
        load_config(path)


def test_a_choice_out_of_its_values_lists_them():
    with pytest.raises(ConfigError, match=r"'features\.intermediates' is 'disc'; allowed: 'auto', 'memory', 'disk'"):
        load_config(None, ["features.intermediates=disc"])
    assert load_config(None, ["features.intermediates=disk"]).features.intermediates == "disk"


def test_memory_sizes_take_strings_fractions_and_bytes():
    """cluster.memory_limit / rmm_pool_size as the README documents them: "8GB", 0.8, bytes."""
    cluster = load_config(None, ["cluster.rmm_pool_size=0.8", "cluster.memory_limit=8GB"]).cluster
    assert cluster.rmm_pool_size == 0.8 and cluster.memory_limit == "8GB"
    assert load_config(None, ["cluster.memory_limit=4000000000"]).cluster.memory_limit == 4e9
    with pytest.raises(ConfigError, match="rmm_pool_size"):
        load_config(None, ["cluster.rmm_pool_size=[1]"])
