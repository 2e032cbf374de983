"""review14: a temporary directory, trashed version or ingest folder that is a symbolic link to a directory (a
version or ingest folder moved to another disk and linked back) is deleted as the link, what it points to left
alone; shutil.rmtree refuses links, so it was left for good and said on every sweep."""

from __future__ import annotations

from rapids_engage import store_builds
from rapids_engage.atomic import OLD_PREFIX, remove_tree
from rapids_engage.ingest import cache_pruning
from rapids_engage.store import FeatureStore
from rapids_engage.store_admin import remove_unless_in_use

VERSION = "0123456789abcdef"


def _linked(link, target):
    target.mkdir(parents=True)
    (target / "part.parquet").write_bytes(b"x" * 4096)
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(target, target_is_directory=True)
    return link


def test_remove_tree_removes_a_link_not_what_it_points_to(tmp_path):
    link = _linked(tmp_path / "link", tmp_path / "elsewhere")
    assert remove_tree(link) is None
    assert not link.is_symlink() and (tmp_path / "elsewhere" / "part.parquet").is_file()


def test_the_store_sweep_deletes_a_linked_leftover_once(tmp_path):
    store = tmp_path / "store"
    link = _linked(store / f".trash-{VERSION}-1234abcd", tmp_path / "disk2" / VERSION)
    assert store_builds.sweep(store) == (1, 0, [], {})  # nothing under the store freed
    assert not link.is_symlink() and (tmp_path / "disk2" / VERSION / "part.parquet").is_file()
    assert store_builds.sweep(store) == (0, 0, [], {})


def test_deleting_a_linked_version_leaves_no_trash(tmp_path):
    store = tmp_path / "store"
    _linked(store / VERSION, tmp_path / "disk2" / VERSION)
    assert remove_unless_in_use(FeatureStore(store), VERSION) == []
    assert [p.name for p in store.iterdir() if p.name.startswith(".trash-")] == []
    assert (tmp_path / "disk2" / VERSION / "part.parquet").is_file()


def test_pruning_a_linked_ingest_folder_removes_the_link_and_frees_nothing(tmp_path):
    cache = tmp_path / "cache"
    entry = _linked(cache / "table-2026-12-01", tmp_path / "disk2" / "table-2026-12-01")
    assert cache_pruning._delete_unless_read(entry) == 0
    assert [p.name for p in cache.iterdir() if p.name.startswith(OLD_PREFIX)] == []
    assert (tmp_path / "disk2" / "table-2026-12-01" / "part.parquet").is_file()


def test_the_ingest_sweep_removes_a_linked_leftover_of_a_killed_pruning(tmp_path):
    cache = tmp_path / "cache"
    link = _linked(cache / f"{OLD_PREFIX}table-{'a' * 12}-{'b' * 8}", tmp_path / "disk2" / "table-2026-12-01")
    assert cache_pruning._sweep_leftovers(cache) == 0
    assert not link.is_symlink() and (tmp_path / "disk2" / "table-2026-12-01" / "part.parquet").is_file()
