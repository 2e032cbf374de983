"""External-memory training (``train.external_memory``): one booster per target from the store's
parquet files, read one file at a time, for training splits larger than the workers' memory.

XGBoost builds an :class:`xgboost.ExtMemQuantileDMatrix` from a :class:`xgboost.DataIter` over the
files: on CPU the quantised pages go to a disk cache, so memory holds one file plus the page being
used, not the split; on GPU XGBoost (>= 3.0) keeps them in host memory instead (``on_host``, its
fast path), about one byte per feature value (``max_bin`` <= 256), a quarter of the float32 split:
the worker's host memory limit must allow that. The training runs as one task on one dask worker
(the GPU of a dask-cuda worker, ``device="cuda"``, with cudf reading the files), so the worker's
memory limit and spilling still apply to everything else. The worker is the one whose training lock
(:mod:`.train_locks`, xgboost.dask's) is least queued, and the task holds that lock, waited for as the
in-memory path waits for its own: another run's training on a shared cluster never trains beside it there.
``xgboost.dask`` keeps the whole split in memory and is the default.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .backend import Backend
from .config import TrainConfig


def _batches_class() -> type:
    import xgboost as xgb

    class ParquetBatches(xgb.DataIter):
        """Feature matrix + label of a list of parquet files, one file per batch (float32). With ``bins`` (a quantile
        matrix, see :func:`validation_matrix`) the rows come as the values their bins on its cuts stand for (CSR)."""

        def __init__(self, files: list[str], features: list[str], target: str, raw_counts: bool, gpu: bool, cache: str) -> None:
            self.files, self.features, self.target, self.raw_counts, self.gpu = files, features, target, raw_counts, gpu
            self.bins, self.max_bin = None, 0
            self.position = 0
            super().__init__(cache_prefix=cache)

        def next(self, input_data: Any) -> bool:
            if self.position == len(self.files):
                return False
            if self.gpu:
                import cudf as lib
            else:
                import pandas as lib
            frame = lib.read_parquet(self.files[self.position], columns=[*self.features, self.target])
            label = frame[self.target].astype("float64")
            if self.raw_counts:  # labels are log1p(count); raw-count objectives fit the counts
                label = np.expm1(label)
            data = frame[self.features].astype("float32")
            if self.bins is None:
                input_data(data=data, label=label)
            else:
                binned = xgb.QuantileDMatrix(data, ref=self.bins, max_bin=self.max_bin)
                input_data(data=binned.get_data(), label=label, feature_names=binned.feature_names,
                           feature_types=binned.feature_types)
            self.position += 1
            return True

        def reset(self) -> None:
            self.position = 0

    return ParquetBatches


def parquet_files(directory: Path) -> list[str]:
    """The non-empty parquet files of a store split (listed as :func:`.store.parquet_files` lists a store's), in name
    order, as absolute paths."""
    import pyarrow.parquet as pq

    from .store import parquet_files as store_files

    files = [str(f) for f in store_files(Path(directory).absolute())]  # absolute: a worker's directory is not ours
    return [f for f in files if pq.ParquetFile(f).metadata.num_rows > 0]


def label_totals(files: list[str], target: str) -> tuple[float, int]:
    """(sum, rows) of the label column ``target`` of parquet ``files``, read a file at a time."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    total, rows = 0.0, 0
    for f in files:
        column = pq.read_table(f, columns=[target]).column(target)
        total += float(pc.sum(column).as_py() or 0)
        rows += len(column)
    return total, rows


def lowest_label(files: list[str], target: str) -> float:
    """The smallest value of the label column ``target`` of parquet ``files``, read a file at a time; inf without rows."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    lows = []
    for f in files:
        low = pc.min(pq.read_table(f, columns=[target]).column(target)).as_py()
        if low is not None:
            lows.append(float(low))
    return min(lows, default=float("inf"))


#: Prefix of a training's cache directory, followed by ``<host>-<pid>-`` of the process that made it.
CACHE_PREFIX = "xgb-extmem-"


def worker_cache_dir(cache_dir: str | None) -> str | None:
    """``cache_dir`` as a worker is to read it: a relative path made this process's (a worker's directory is not ours),
    ``~`` left for the worker to expand (:func:`cache_scratch`)."""
    if not cache_dir or cache_dir.startswith("~"):
        return cache_dir or None
    return os.path.abspath(cache_dir)


def cache_scratch(cache_dir: str | None) -> str:
    """A new cache directory under ``cache_dir`` (default: the system's temporary directory), after deleting
    those that processes of this host no longer running left there: a run stopped (Ctrl-C) or a worker
    killed mid-training left its quantised pages, as large as a quarter of the training split, for good.
    ``cache_dir`` is made if missing: the workers of an existing cluster (``--scheduler-address``) may lack it; its ``~``
    is this process's home (a worker's: the driver's was taken, for a worker whose ``HOME`` differs)."""
    import socket

    from .atomic import process_alive

    host = socket.gethostname().replace("-", "_")
    base = Path(cache_dir or tempfile.gettempdir()).expanduser()
    base.mkdir(parents=True, exist_ok=True)
    for old in base.glob(f"{CACHE_PREFIX}{host}-*-*"):
        pid = old.name[len(CACHE_PREFIX) + len(host) + 1:].split("-", 1)[0]
        if pid.isdigit() and not process_alive(int(pid)):
            shutil.rmtree(old, ignore_errors=True)
    return tempfile.mkdtemp(prefix=f"{CACHE_PREFIX}{host}-{os.getpid()}-", dir=base)


def validation_matrix(batches: Any, dtrain: Any, max_bin: int) -> Any:
    """The validation rows of ``batches`` (``ParquetBatches``), evaluated at every boosting round, on ``dtrain``'s cuts.
    On GPU an ``ExtMemQuantileDMatrix``. On CPU XGBoost 3.2 predicts one by reading every feature of a row from its
    bins (38 ms a round for the 1M demo's 36k validation rows against 6 ms for a ``DMatrix``), so there it is an
    external-memory ``DMatrix`` of the values the rows' bins stand for, read a file at a time (as
    :func:`~rapids_engage.train_shared_matrix.binned_values`: the bins' predictions, so the same early stopping and
    models). Its pages in the cache take ~8 bytes per feature value where the bins took ~1."""
    import xgboost as xgb

    if batches.gpu:
        return xgb.ExtMemQuantileDMatrix(batches, ref=dtrain, max_bin=max_bin)
    batches.bins, batches.max_bin = dtrain, max_bin
    try:
        return xgb.DMatrix(batches)  # read once, into its cache: the batches are not read again
    finally:
        batches.bins = None  # not to keep the training pages alive until the collector finds the iterator


def cache_shortfall(client: Any, worker: str, train_files: list[str], features: list[str], cache_dir: str | None,
                    wait_s: float = 5.0) -> str | None:
    """Why a training whose ``worker`` died may have filled the disk of its cache: its quantised pages take about a
    byte per feature value of the training split (``max_bin`` <= 256), and the cache's filesystem on that worker's host
    has less free (XGBoost's failed write there ends the worker's process: ``FileStream.Write incomplete``, no Python
    error). Asked of a worker on that host (its nanny's restart, waited for up to ``wait_s``): this process's
    temporary directory was checked, another machine's on an existing cluster; where none answers, this process's
    directory still is, and the hint says whose. None when it has room (or cannot be asked)."""
    import pyarrow.parquet as pq

    from .progress import byte_size

    try:
        need = sum(pq.ParquetFile(f).metadata.num_rows for f in train_files) * len(features)
    except OSError:
        return None
    host = _host(worker)
    answer, whose = _free_on_host(client, host, cache_dir, wait_s), f"asked of a worker on {host}"
    if answer is None:
        answer, whose = cache_free(cache_dir), f"this process's machine: no worker on {host} answered"
    if answer is None or answer[1] >= need:
        return None
    where, free = answer
    return (f"its quantised pages need about {byte_size(need)} under {where}, which has {byte_size(free)} free: "
            f"free space, or set cluster.local_directory to a larger disk ({whose})")


def _free_on_host(client: Any, host: str, cache_dir: str | None, wait_s: float) -> tuple[str, int] | None:
    """:func:`cache_free` asked of a worker on ``host`` (waited for up to ``wait_s``), None when none answers."""
    from .cluster import worker_addresses

    deadline = time.monotonic() + wait_s
    while not (there := sorted(w for w in worker_addresses(client) or () if _host(w) == host)):
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.2)
    try:
        return next(iter(client.run(cache_free, cache_dir, workers=there[:1]).values()), None)
    except Exception:  # noqa: BLE001 - best effort: gone meanwhile, or a client that cannot run functions
        return None


def _host(address: str) -> str:
    """The host of a worker's address (the address itself where distributed cannot parse it)."""
    from distributed.comm import get_address_host

    try:
        return get_address_host(address)
    except Exception:  # noqa: BLE001 - an address of a protocol not installed here, or without a port
        return address


def cache_free(cache_dir: str | None) -> tuple[str, int] | None:
    """(the cache's directory as this process reads it, its filesystem's free bytes), None when it cannot be asked: run
    on a worker (:func:`cache_shortfall`)."""
    where = str(Path(cache_dir or tempfile.gettempdir()).expanduser())
    try:
        return where, shutil.disk_usage(where).free
    except OSError:
        return None


def fit_from_files(
    train_files: list[str],
    valid_files: list[str],
    features: list[str],
    target: str,
    params: dict[str, Any],
    rounds: int,
    patience: int,
    raw_counts: bool,
    cache_dir: str | None,
    use_rmm: bool = False,
) -> tuple[bytes, int, dict[str, dict[str, list[float]]]]:
    """(booster as UBJ bytes cut at the best round, best round, metrics per round of the training and
    validation rows): runs on a worker. ``use_rmm``: XGBoost allocates through RMM (the worker's pool), as
    xgboost.dask's training does with the driver's config; XGBoost's global config is per thread, so a
    plain task sets it itself (verbosity 0 too)."""
    scratch = cache_scratch(cache_dir)
    try:
        return _fit_in_cache(scratch, train_files, valid_files, features, target, params, rounds, patience, raw_counts, use_rmm)
    except BaseException as exc:  # (abandoned: TrainingAbandoned) the error, which the task keeps, held the matrices in
        traceback.clear_frames(exc.__traceback__)  # its frames: freed after their cache went, XGBoost warned of it then
        raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _fit_in_cache(scratch: str, train_files: list[str], valid_files: list[str], features: list[str], target: str,
                  params: dict[str, Any], rounds: int, patience: int, raw_counts: bool,
                  use_rmm: bool) -> tuple[bytes, int, dict[str, dict[str, list[float]]]]:
    """:func:`fit_from_files` with its matrices' cache under ``scratch``; they are freed when it returns."""
    import xgboost as xgb

    from .train import EVAL_SETS, best_model, matrix_max_bin
    from .train_abandon import stop_callback

    gpu, max_bin = params.get("device", "cpu").startswith("cuda"), matrix_max_bin(params)
    with xgb.config_context(use_rmm=use_rmm, verbosity=0):
        batches = _batches_class()
        dtrain = xgb.ExtMemQuantileDMatrix(
            batches(train_files, features, target, raw_counts, gpu, str(Path(scratch) / "train")), max_bin=max_bin
        )
        dvalid = validation_matrix(
            batches(valid_files, features, target, raw_counts, gpu, str(Path(scratch) / "valid")), dtrain, max_bin
        )
        history: dict[str, dict[str, list[float]]] = {}
        booster = xgb.train(
            params, dtrain, num_boost_round=rounds, evals=list(zip((dtrain, dvalid), EVAL_SETS)), evals_result=history,
            early_stopping_rounds=patience if patience > 0 else None, verbose_eval=False,
            callbacks=[stop_callback(alone=True)],  # a run that gives it up cancels the task: it stops after its round
        )  # fmt: skip
        booster, best, per_round = best_model(booster, history, patience)
        return bytes(booster.save_raw("ubj")), best, per_round


def fit_on_worker(client: Any, worker: str, fit_args: tuple, abandoned: Any) -> tuple[bytes, int, dict]:
    """:func:`fit_from_files` of ``fit_args`` as a task on ``worker`` once its training lock is taken
    (:func:`~.train_locks.training_lock`: released once, as the block ends or by the run's abort). ``abandoned``
    (:class:`~.train_locks.Abandonment`): set when the run gives the training up, which cancels the task."""
    from .train_locks import training_lock

    if abandoned.is_set():  # the run stopped before the lock was asked for: take none it would not release
        raise RuntimeError("training abandoned")
    with training_lock(client, [worker]):
        future = client.submit(fit_from_files, *fit_args, workers=[worker], allow_other_workers=False, pure=False)
        abandoned.on_abandon(lambda: client.cancel(future))  # the task stops after its boosting round (train_abandon)
        return future.result()


def train_target_external(
    client: Any,
    backend: Backend,
    cfg: TrainConfig,
    target: str,
    train_dir: Path,
    valid_dir: Path,
    features: list[str],
    kind: str = "binary",
    cache_dir: str | None = None,
    log: Callable[[str], None] | None = None,
) -> Any:
    """One target's model from the splits on disk, by external memory (one worker): the in-memory path's model
    (:func:`~rapids_engage.train_shared_matrix.train_targets`) for training splits larger than the workers' memory.
    However the call ends, it leaves the worker's training lock free (:mod:`.train_locks`); ``log`` hears when it
    waits for another training's."""
    from .cluster import while_workers_live, worker_addresses
    from .cluster_errors import WorkerLostError
    from .train import (TrainedModel, boosting_rounds, check_lowest_label, fits_raw_counts, is_ranking, loaded_booster, uses_rmm,
                        weigh_classes, xgb_params)
    from .train_locks import least_queued, released_on_abort

    params = xgb_params(cfg, target, backend, kind)
    if is_ranking(params["objective"]):
        raise ValueError(f"train.external_memory: ranking objectives ({params['objective']} for {target!r}) need xgboost.dask; "
                         "set train.external_memory: false")
    raw_counts = fits_raw_counts(params, target, kind)
    rounds, patience = boosting_rounds(cfg, target)
    train_files = parquet_files(train_dir)
    if raw_counts:
        check_lowest_label(params, target, lambda: lowest_label(train_files, target))
    weigh_classes(params, lambda: label_totals(train_files, target))
    cache_dir = worker_cache_dir(cache_dir)
    fit_args = (train_files, parquet_files(valid_dir), features, target, params, rounds, patience, raw_counts, cache_dir,
                uses_rmm(backend))
    worker = least_queued(client, worker_addresses(client) or ())
    with released_on_abort(client, [worker], log) as abandoned:  # any other ending cancels the task, frees the lock
        try:
            raw, best, history = while_workers_live(client, lambda: fit_on_worker(client, worker, fit_args, abandoned))
        except WorkerLostError as exc:
            short = cache_shortfall(client, worker, train_files, features, cache_dir)
            if short is None:
                raise
            raise WorkerLostError(f"{exc}; or its external-memory cache filled the disk: {short}") from None
    booster = loaded_booster(raw, params)
    return TrainedModel(target, booster, best, history["valid"], kind, params["objective"], history["train"], params)
