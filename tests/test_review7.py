"""Defects found reviewing the merges d3579e7..f37ae10 (review 7)."""

from __future__ import annotations

from pathlib import Path

import pytest

from rapids_engage.config import load_config
from rapids_engage.features.key_checks import role_changes

HN = Path(__file__).resolve().parents[1] / "configs" / "hn.yaml"


@pytest.mark.parametrize("override", ["train.targets=[points]", "data.table.targets.points.column=pts",
                                      "out=author"])
def test_role_changes_names_only_data_table_roles(override):
    """An override of a key that is no ``data.table`` role (or a setting nested below one) re-maps no role: it was
    said as '--set data.table.train.targets changed it from [...] to None' beside a key column it never named."""
    assert role_changes(load_config(HN, [override])) == {}


def test_role_changes_names_a_re_mapped_role():
    assert role_changes(load_config(HN, ["data.table.creator=username"])) == {
        "author": "--set data.table.creator changed it from 'author' to 'username', and the keys still name the old one"}
