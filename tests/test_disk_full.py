"""A full disk is one line naming the file being written, and leaves no partial output behind.

The real ENOSPC comes from ``/dev/full`` (a write there fails with "No space left on device"): a symlink to it where
the code writes makes the kernel refuse the write, as a full filesystem does. Checked on real full tmpfs mounts too
(README "Data larger than memory"); these tests keep each failing write fast.
"""

from __future__ import annotations

import errno
import os
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from rapids_engage import atomic
from rapids_engage.failures import one_line

FULL = Path("/dev/full")
needs_dev_full = pytest.mark.skipif(not FULL.exists(), reason="needs /dev/full (Linux)")


def pyarrow_disk_full() -> OSError:
    """What pyarrow raises on a full disk: errno 28 and no file name."""
    return OSError(errno.ENOSPC, "Error writing bytes to file. Detail: [errno 28] No space left on device")


def test_a_write_error_without_a_file_name_is_named_after_the_file_written(tmp_path):
    from rapids_engage.atomic import write_file

    def fail(_tmp: Path) -> None:
        raise pyarrow_disk_full()

    with pytest.raises(OSError) as caught:
        write_file(tmp_path / "part.parquet", fail)
    assert caught.value.errno == errno.ENOSPC and caught.value.filename == str(tmp_path / "part.parquet")
    assert one_line(caught.value, ()).startswith(f"disk full writing {tmp_path / 'part.parquet'}: free space")
    assert list(tmp_path.iterdir()) == []


@needs_dev_full
def test_a_model_saved_on_a_full_disk_is_one_line_naming_its_file(tmp_path, monkeypatch):
    """XGBoost's own save_model failed in a multi-line 'FileStream.Write incomplete' with a native stack trace."""
    import xgboost as xgb

    from rapids_engage.train import TrainedModel

    rng = np.random.default_rng(0)
    booster = xgb.train({"objective": "binary:logistic"}, xgb.DMatrix(rng.random((40, 2)), label=rng.random(40) > 0.5), 2)
    final = tmp_path / "like.json"
    part = final.with_name(f".like.json.{os.getpid()}.part")  # where the model is written
    monkeypatch.setattr(atomic, "part_path", lambda path: part if path == final else path.with_name(f".{path.name}.part"))
    for path in (final, part):
        path.symlink_to(FULL)
    with pytest.raises(Exception) as caught:
        TrainedModel("like", booster, 1).save(tmp_path, ["a", "b"])
    message = one_line(caught.value, ())
    assert message is not None and message.startswith(f"disk full writing {final}: free space"), caught.value
    assert "\n" not in message


@needs_dev_full
def test_an_ingest_part_on_a_full_disk_is_named(tmp_path):
    from rapids_engage.ingest.writer import DayWriter

    part = tmp_path / "day=1970-01-01" / "part-00000.parquet"
    part.parent.mkdir()
    part.with_name(f".{part.name}.tmp").symlink_to(FULL)
    table = pa.table({"tweet_timestamp": pa.array(np.arange(1000, dtype="int64")), "x": pa.array(np.ones(1000))})
    writer = DayWriter(tmp_path, table.schema, row_group_rows=100)
    with pytest.raises(OSError) as caught:
        writer.write(table)
        writer.close()
    assert caught.value.errno == errno.ENOSPC and caught.value.filename == str(part)


def test_an_ingest_part_the_disk_filled_under_is_closed_without_a_traceback_at_exit(tmp_path, monkeypatch):
    """A part whose rows and footer no longer fit: its open writer's finalizer closed it again at exit and printed
    'Exception ignored in: ParquetWriter.__del__' with a traceback after the run's one-line error."""
    import gc

    import pyarrow.parquet as pq

    from rapids_engage.ingest.writer import DayWriter

    class FullDiskWriter(pq.ParquetWriter):  # opened, then every write fails as on a full disk
        def write_table(self, *_args, **_kwargs):
            raise pyarrow_disk_full()

        def close(self):
            if self.is_open:
                raise pyarrow_disk_full()

    unraisable = []
    monkeypatch.setattr(sys, "unraisablehook", unraisable.append)
    monkeypatch.setattr(pq, "ParquetWriter", FullDiskWriter)
    table = pa.table({"tweet_timestamp": pa.array(np.arange(1000, dtype="int64")), "x": pa.array(np.ones(1000))})
    writer = DayWriter(tmp_path, table.schema, row_group_rows=100)
    with pytest.raises(OSError) as caught:
        writer.write(table)
    assert caught.value.filename == str(tmp_path / "day=1970-01-01" / "part-00000.parquet")
    del writer, caught
    gc.collect()
    assert unraisable == []


def test_a_store_split_or_predictions_a_worker_could_not_write_are_named(tmp_path):
    """dask's to_parquet re-raises the worker's OSError, which names no file."""
    from rapids_engage.predict import PREDICT_JSON, _publish_predictions
    from rapids_engage.store import write_split

    class FullDisk:
        def to_parquet(self, *_args, **_kwargs):
            raise pyarrow_disk_full()

    with pytest.raises(OSError) as caught:
        write_split(FullDisk(), tmp_path / "train")
    assert caught.value.filename == str(tmp_path / "train")

    (tmp_path / "out" / "predictions").mkdir(parents=True)
    (tmp_path / "out" / PREDICT_JSON).write_text("{}")  # an earlier predict's, beside its predictions: kept
    with pytest.raises(OSError) as caught:
        _publish_predictions(FullDisk(), tmp_path / "out")
    assert caught.value.filename == str(tmp_path / "out" / "predictions")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [PREDICT_JSON, "predictions"]


def test_a_synthetic_cache_cut_short_by_a_full_disk_is_removed(tmp_path, monkeypatch):
    """It was left at its place, filling the disk until a run of the same spec generated it again."""
    import rapids_engage.synthetic as synthetic
    from rapids_engage.config import load_config
    from rapids_engage.data import synthetic_dataset

    def generate(out_dir, *_args, **_kwargs):
        (Path(out_dir) / "data").mkdir(parents=True)
        (Path(out_dir) / "data" / "part-00000.parquet").write_bytes(b"PAR1")
        raise OSError(errno.ENOSPC, "No space left on device", str(Path(out_dir) / "data" / "part-00001.parquet"))

    monkeypatch.setattr(synthetic, "generate", generate)
    cfg = load_config(None, [f"data.cache_dir={tmp_path}", "synthetic.rows=100"])
    with pytest.raises(OSError):
        synthetic_dataset(cfg)
    assert list(tmp_path.iterdir()) == []
