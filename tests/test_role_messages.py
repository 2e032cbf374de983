"""A table role re-mapped by ``--set`` while the feature keys still name the config file's column: said so."""

from __future__ import annotations

from pathlib import Path

import pytest

HN = Path(__file__).resolve().parent.parent / "configs" / "hn.yaml"


def _refusal(*overrides: str) -> str:
    from rapids_engage.backend import CPU
    from rapids_engage.config import ConfigError, load_config
    from rapids_engage.data import expected_layout
    from rapids_engage.pipeline import _check_config

    cfg = load_config(HN, list(overrides))
    with pytest.raises(ConfigError) as refused:
        _check_config(cfg, expected_layout(cfg), CPU, train=True)
    return str(refused.value)


def test_keys_naming_a_role_column_set_changed_say_so():
    """``--set data.table.creator=username`` (the file's ``author``) failed on ``features.target_encoding.keys: no
    column 'author'``, blaming the keys; it says the role changed and the keys name the old column."""
    message = _refusal("data.table.creator=username")
    assert message.startswith(f"{HN}: features.target_encoding.keys: no column 'author' in the data")
    assert message.endswith("; --set data.table.creator changed it from 'author' to 'username', and the keys still "
                            "name the old one")


def test_a_key_naming_no_role_column_is_not_blamed_on_a_role():
    message = _refusal("data.table.creator=username", "features.target_encoding.keys=[[username], [autor]]")
    assert "no column 'autor'" in message and "changed it" not in message
