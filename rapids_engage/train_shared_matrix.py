"""Every target trained on one quantile sketch per worker.

``xgboost.dask.train`` rebuilds each worker's ``QuantileDMatrix`` at every call, so the features were
sketched once per target. Cut points do not depend on the label: here one task per worker builds its
training and validation matrices once (from its pinned partitions, as xgboost.dask does) and trains
every target of a group on them, setting the target's labels, under XGBoost's collective
(``xgboost.dask.CommunicatorContext``, a ``RabitTracker`` on the scheduler, one task per worker inside
``distributed.MultiLock`` on the workers: the lock xgboost.dask takes, so :mod:`.train_locks` applies).
Targets share matrices when they share the row order (``rank:*`` ones train on rows sorted by group,
with ``qid``) and ``max_bin``. The models are those one ``xgboost.dask.train`` per target gives, byte for
byte (tested).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from .backend import Backend
from .config import TrainConfig

EMPTY = None  # what a worker without training rows returns (xgboost.dask returns none of its booster)


class TargetFailed(ValueError):
    """XGBoost refused to train ``target`` on a worker: its words (:func:`.cluster_errors.native_words`)."""

    def __init__(self, target: str, words: str) -> None:
        super().__init__(target, words)
        self.target, self.words = target, words


@dataclass(frozen=True)
class TargetSpec:
    """What one target's training needs on the workers."""

    target: str
    params: dict[str, Any]
    rounds: int
    patience: int
    raw_counts: bool


def tracker_addresses(client: Any) -> list[Any]:
    """Where to start the tracker, in xgboost.dask's order: the dask config's ``xgboost.scheduler_address``
    (``host`` or ``host:port``) if set, else XGBoost's guess of this host (None), then the scheduler's host."""
    import dask
    import distributed

    try:
        scheduler = distributed.comm.get_address_host(client.scheduler.address).strip("/:")
    except Exception:  # noqa: BLE001 - as xgboost.dask: an address without a host (inproc)
        scheduler = None
    user = dask.config.get("xgboost.scheduler_address", None)
    if user is None:
        return [None, scheduler]
    user = user[1:-1] if user.startswith("[") and user.endswith("]") else user  # IPv6 in dask's brackets
    try:
        host, port = distributed.comm.get_address_host_port(user)
    except ValueError:  # a host without a port
        host, port = user, 0
    return [(host, port), scheduler]


#: Seconds XGBoost's tracker waits for every training task to join its group (and to leave it): the tasks start
#: together once the workers' training locks are taken, unless a worker's threads are busy with other work.
TRACKER_TIMEOUT_S = 300


def start_tracker(client: Any, n_workers: int) -> dict[str, Any]:
    """XGBoost's collective arguments of a ``RabitTracker`` started on the scheduler (as xgboost.dask does).

    The tracker gives up on forming (or closing) the group after :data:`TRACKER_TIMEOUT_S`; the group's training
    itself has no time limit (the communicator's own retry and timeout hold, as for ``xgboost.dask.train``). Without
    it (xgboost.dask's default) a worker lost before joining left its peers' training tasks waiting for it for ever:
    on an existing cluster their threads stayed taken after the run ended, and the next run hung. Until it ends, the
    scheduler lists it by its id (:data:`.train_abandon.TRACKER_ID`, in the arguments) for
    :func:`.train_abandon.stop_tracker` (:data:`.train_abandon.TRACKERS`)."""
    from .train_abandon import TRACKER_ID, TRACKERS

    def start(n_workers: int, addresses: list[Any], timeout_s: int, listed: str, named: str,
              dask_scheduler: Any) -> dict[str, Any]:
        import threading  # nested: travels by value
        import uuid

        from xgboost.core import XGBoostError
        from xgboost.tracker import RabitTracker

        for i, address in enumerate(addresses):
            host, port = address if isinstance(address, tuple) else (address, 0)
            try:
                tracker = RabitTracker(n_workers=n_workers, host_ip=host, port=port, sortby="task", timeout=timeout_s)
                tracker.start()
                break
            except XGBoostError:
                if i == len(addresses) - 1:
                    raise
        args = {**tracker.worker_args(), named: uuid.uuid4().hex}
        ended = threading.Event()
        trackers = dask_scheduler.__dict__.setdefault(listed, {})
        trackers[args[named]] = ended

        def wait() -> None:
            try:
                tracker.wait_for()
            except XGBoostError:  # the group never formed in time: its tasks fail and say so; the scheduler's log need not
                try:
                    tracker.free()  # now, as its __del__ would, whose error on a timed-out tracker went to stderr
                except XGBoostError:
                    pass
            finally:
                trackers.pop(args[named], None)
                ended.set()

        threading.Thread(target=wait, daemon=True).start()
        return args

    return client.run_on_scheduler(start, n_workers, tracker_addresses(client), TRACKER_TIMEOUT_S, TRACKERS, TRACKER_ID)


def _batches(parts: list[Any], features: list[str], qid: list[Any] | None) -> Any:
    import xgboost as xgb

    class Partitions(xgb.DataIter):
        """A worker's partitions, one batch each (xgboost.dask's ``DaskPartitionIter``, without labels)."""

        def __init__(self) -> None:
            self.i = 0
            super().__init__(release_data=True)

        def next(self, input_data: Any) -> bool:
            if self.i == len(parts):
                return False
            input_data(data=parts[self.i][features], qid=None if qid is None else qid[self.i])
            self.i += 1
            return True

        def reset(self) -> None:
            self.i = 0

    return Partitions()


def quantile_matrix(parts: list[Any], features: list[str], max_bin: int, nthread: int, group: str | None, ref: Any = None,
                    cuda: bool = False) -> Any:
    """The ``QuantileDMatrix`` of a worker's partitions (``qid`` from ``group``), or an empty one: of a cupy array
    where the workers train on GPUs (``cuda``), as xgboost.dask makes it, so that its collective calls match theirs."""
    import numpy as np
    import xgboost as xgb

    from .train import query_ids

    if not parts:
        empty = importlib.import_module("cupy" if cuda else "numpy").empty((0, 0))
        return xgb.QuantileDMatrix(empty, feature_names=features, max_bin=max_bin, ref=ref)
    qid = [query_ids(p[group]) for p in parts] if group else None
    return xgb.QuantileDMatrix(_batches(parts, features, qid), missing=np.nan, nthread=nthread, max_bin=max_bin, ref=ref)


def binned_values(matrix: Any, nthread: int) -> Any:
    """A CPU ``DMatrix`` of the values a ``QuantileDMatrix``'s bins stand for, its query groups kept: XGBoost predicts
    it exactly as it predicts the bins (for validation rows beyond the training range too), at ~3.5 ms a round for
    the 1M demo's 18k validation rows of a worker where the bins took ~18 ms (CPU, XGBoost 3.2: it reads every
    feature of a row from its bins). On GPU the bins' predictions are not slow: they stay."""
    import numpy as np
    import xgboost as xgb

    rows = xgb.DMatrix(matrix.get_data(), feature_names=matrix.feature_names, feature_types=matrix.feature_types,
                       nthread=nthread)
    starts = matrix.get_uint_info("group_ptr")  # of qid: where each query's rows start
    if len(starts):
        rows.set_group(np.diff(starts))
    return rows


def labels(parts: list[Any], spec: TargetSpec) -> Any:
    """The target's labels of a worker's partitions, in their order (raw counts: expm1 of the stored log1p)."""
    import numpy as np

    from .backend import frame_library

    label = frame_library(parts[0]).concat([p[spec.target] for p in parts])
    return np.expm1(label) if spec.raw_counts else label


def worker_threads(params: dict[str, Any], worker_nthreads: int) -> int:
    """XGBoost's threads on a worker: the target's ``nthread`` / ``n_jobs`` when set (not 0), else the worker's."""
    for key in ("nthread", "n_jobs"):
        if params.get(key):
            return int(params[key])
    return worker_nthreads


def fit_targets(train_parts: list[Any], valid_parts: list[Any], features: list[str], group: str | None,
                specs: list[TargetSpec], coll_args: dict[str, Any], global_config: dict[str, Any]) -> dict | None:
    """On a worker: per target, (booster as UBJ bytes, metrics per round of each eval set); None for a worker
    without training rows."""
    import distributed
    import xgboost as xgb
    import xgboost.dask  # noqa: F401 - registers xgb.dask

    from .train import matrix_max_bin
    from .train_abandon import TrainingAbandoned, leave_if_abandoned, task_cancelled, worker_args

    nthread = worker_threads(specs[0].params, distributed.get_worker().state.nthreads)
    out = {}
    if task_cancelled():  # abandoned before it joins its group (imports take seconds in a new worker): a tracker
        raise TrainingAbandoned("the run gave this training up")  # stopped meanwhile would be retried for ~6 s
    with xgb.dask.CommunicatorContext(**worker_args(coll_args)), xgb.config_context(**{**global_config, "nthread": nthread}):
        max_bin, cuda = matrix_max_bin(specs[0].params), str(specs[0].params.get("device", "")).startswith("cuda")
        dtrain = quantile_matrix(train_parts, features, max_bin, nthread, group, cuda=cuda)
        dvalid = quantile_matrix(valid_parts, features, max_bin, nthread, group, ref=dtrain, cuda=cuda)
        if not cuda:  # evaluated every round: from its bins' values, the same predictions ~5x faster
            dvalid = binned_values(dvalid, nthread)
        for spec in specs:
            leave_if_abandoned()
            for matrix, parts in ((dtrain, train_parts), (dvalid, valid_parts)):
                if parts:
                    matrix.set_label(labels(parts, spec))
            out[spec.target] = fit_target(spec, dtrain, dvalid)
    return out if dtrain.num_row() else EMPTY


def fit_target(spec: TargetSpec, dtrain: Any, dvalid: Any) -> tuple[bytes, dict]:
    """On a worker, inside the collective: (the target's booster as UBJ bytes, metrics per round of each eval set);
    :class:`TargetFailed` when XGBoost refuses (out of memory excepted: :mod:`.failures` words that)."""
    import distributed
    import xgboost as xgb

    from .failures import is_out_of_memory
    from .train import EVAL_SETS
    from .train_abandon import stop_callback
    from .cluster_errors import native_words

    history: dict = {}
    threads = worker_threads(spec.params, distributed.get_worker().state.nthreads)
    try:
        booster = xgb.train({**spec.params, "nthread": threads, "n_jobs": threads}, dtrain, num_boost_round=spec.rounds,
                            evals=list(zip((dtrain, dvalid), EVAL_SETS)), evals_result=history, callbacks=[stop_callback()],
                            early_stopping_rounds=spec.patience if spec.patience > 0 else None, verbose_eval=False)
    except xgb.core.XGBoostError as exc:
        if is_out_of_memory(exc):
            raise
        raise TargetFailed(spec.target, native_words(exc)) from None
    return bytes(booster.save_raw("ubj")), history


def worker_parts(client: Any, frame: Any) -> dict[str, list[Any]]:
    """Futures of ``frame``'s partitions (computed where their inputs lie), per worker holding them, in partition order."""
    import distributed

    futures = client.compute(frame.to_delayed())
    distributed.wait(futures)
    for f in futures:
        if f.status != "finished":
            f.result()  # raises its error
    holders = client.who_has(futures)
    by_worker: dict[str, list[Any]] = {}
    for f in futures:
        by_worker.setdefault(next(iter(holders[f.key])), []).append(f)
    return by_worker


#: Words of a worker's XGBoost error when a peer left the collective (its socket closed): not the cause.
PEER_LOSS_WORDS = ("allreduce", "allgather", "broadcast failed", "broken pipe", "connection reset", "connection closed",
                   "failed to recv", "failed to receive", "failed to send")
#: Seconds to wait, after a training task failed, for its peers' failures to reach the driver.
FAILURE_GRACE_S = 10.0


def is_peer_loss(exc: BaseException) -> bool:
    """Whether a training task's error is a peer's lost connection (another worker failed) rather than a cause."""
    words = (exc.words if isinstance(exc, TargetFailed) else str(exc)).lower()
    return any(w in words for w in PEER_LOSS_WORDS)


def gather_cause(client: Any, futures: list[Any], grace_s: float = FAILURE_GRACE_S) -> list[Any]:
    """The tasks' results; when some fail, raises the first error that is not a peer's lost connection (a worker failing
    inside XGBoost's collective breaks its peers' allreduce, whose errors may reach the driver first)."""
    import asyncio

    import distributed

    if any(f.status == "error" for f in distributed.as_completed(futures)):  # stops at the first failure
        try:
            distributed.wait(futures, timeout=grace_s)  # the other workers fail too, or are stuck in the collective
        except (TimeoutError, asyncio.TimeoutError):  # one and the same from Python 3.11
            pass
        failed = [f for f in futures if f.status == "error"]
        min(failed, key=lambda f: is_peer_loss(f.exception())).result()  # raises: the first cause, else a peer's error
    return client.gather(futures)


def train_shared(client: Any, train: Any, valid: Any, features: list[str], group: str | None, specs: list[TargetSpec],
                 global_config: dict[str, Any], abandoned: Any) -> dict[str, tuple[Any, dict]]:
    """Per target of ``specs`` (one ``max_bin``; ``group``: rows sorted by it, ``qid`` from it), (booster, metrics per round).
    ``abandoned`` (:class:`.train_locks.Abandonment`): when set, the training stops on the cluster (:mod:`.train_abandon`)."""
    from .train import loaded_booster
    from .train_abandon import stop_tracker
    from .train_locks import training_lock

    columns = [*features, *dict.fromkeys(s.target for s in specs), *([group] if group else [])]
    train_by, valid_by = worker_parts(client, train[columns]), worker_parts(client, valid[columns])
    workers = sorted(set(train_by) | set(valid_by))
    if abandoned.is_set():  # the run stopped while the partitions were computed: take no lock it would not release
        raise RuntimeError("training abandoned")
    with training_lock(client, workers):  # train_locks records its id, and releases it once
        coll_args = start_tracker(client, len(workers))  # once the locks are ours: its timeout is for the tasks alone
        abandoned.on_abandon(lambda: stop_tracker(client, coll_args))  # its tasks waiting for their group fail at once
        futures = [client.submit(fit_targets, train_by.get(w, []), valid_by.get(w, []), features, group, specs, coll_args,
                                 global_config, workers=[w], allow_other_workers=False, pure=False) for w in workers]
        abandoned.on_abandon(lambda: client.cancel(futures))  # the tasks in the group leave it together (train_abandon)
        results = gather_cause(client, futures)
    out = next(r for r in results if r is not None)
    params = {s.target: s.params for s in specs}
    return {t: (loaded_booster(raw, params[t]), history) for t, (raw, history) in out.items()}


def target_spec(cfg: TrainConfig, backend: Backend, target: str, kind: str, y_train: Any) -> TargetSpec:
    """The target's parameters: raw-count labels checked, ``scale_pos_weight: balanced`` counted on ``y_train``."""
    import dask
    import numpy as np

    from .train import boosting_rounds, check_lowest_label, fits_raw_counts, weigh_classes, xgb_params

    params = xgb_params(cfg, target, backend, kind)
    raw = fits_raw_counts(params, target, kind)
    if raw:
        check_lowest_label(params, target, lambda: y_train.min().compute())
        y_train = y_train.map_partitions(np.expm1, meta=y_train._meta)
    weigh_classes(params, lambda: dask.compute(y_train.sum(), y_train.count()))
    return TargetSpec(target, params, *boosting_rounds(cfg, target), raw)


def target_groups(cfg: TrainConfig, backend: Backend, kinds: dict[str, str], group: str | None) -> list[tuple[bool, list[str]]]:
    """The targets of ``kinds`` that share matrices, (ranking, targets) per group: the same row order and ``max_bin``."""
    from .train import is_ranking, matrix_max_bin, xgb_params

    groups: dict[tuple[bool, int], list[str]] = {}
    for t, kind in kinds.items():
        params = xgb_params(cfg, t, backend, kind)
        groups.setdefault((is_ranking(params["objective"]), matrix_max_bin(params)), []).append(t)
    for (ranks, _), targets in groups.items():
        if ranks and group is None:
            raise ValueError(f"train: ranking objectives for {targets} need a ranking group (data.table.group)")
    return [(ranks, targets) for (ranks, _), targets in groups.items()]


def train_targets(client: Any, backend: Backend, cfg: TrainConfig, kinds: dict[str, str], train: Any, valid: Any,
                  features: list[str], group: str | None = None, workers: set[str] | None = None, row_key: Sequence[str] = (),
                  log: Callable[[str], None] | None = None, progress: Callable[[int, int, str], None] | None = None,
                  trained: Callable[[Any], None] | None = None) -> dict[str, Any]:
    """A model per target of ``kinds`` (target -> kind) on dask frames holding ``features`` and the labels, the
    targets of a group (:func:`target_groups`) trained on the same matrices; the models in ``kinds``' order.

    A ``rank:*`` objective learns to rank the rows of each ``group`` (rows in ``row_key`` order within a group, so the
    model does not depend on the partitioning); early stopping watches NDCG@10 on the validation groups. Count targets
    default to squared error on log1p(count); ``count:poisson`` / ``reg:tweedie`` / ``reg:gamma`` fit the raw counts.
    ``workers``: those the frames' partitions are pinned to; losing one ends the call with :class:`WorkerLostError`.
    However the call ends, it leaves the workers' training locks free (:mod:`.train_locks`); ``log`` hears when it waits
    for another training's. ``progress(done, total, targets)`` is called before each group, ``trained(model)`` with
    each model once its group is trained.
    """
    import xgboost as xgb

    from .cluster import while_workers_live, worker_addresses
    from .train import by_group, uses_rmm
    from .train_check import config_key
    from .train_locks import released_on_abort

    with xgb.config_context(use_rmm=uses_rmm(backend)):
        global_config = xgb.get_config()
    models, done = {}, 0
    for ranks, targets in target_groups(cfg, backend, kinds, group):
        if progress is not None:
            progress(done, len(kinds), ", ".join(targets))

        def fit() -> tuple[list[TargetSpec], dict]:  # reads the pinned partitions: a lost worker must end it
            rows, checks = (by_group(train, group, row_key), by_group(valid, group, row_key)) if ranks else (train, valid)
            specs = [target_spec(cfg, backend, t, kinds[t], rows[t]) for t in targets]
            return specs, train_shared(client, rows, checks, features, group if ranks else None, specs, global_config, abandoned)

        with released_on_abort(client, workers or worker_addresses(client) or (), log) as abandoned:
            try:
                specs, out = while_workers_live(client, fit, workers=workers)
            except TargetFailed as exc:  # XGBoost's words carry a native stack trace and name no target
                raise ValueError(f"{config_key(cfg, exc.target, exc.words)}: XGBoost: {exc.words}") from None
        for spec in specs:
            models[spec.target] = trained_model(spec, kinds[spec.target], *out[spec.target])
            if trained is not None:
                trained(models[spec.target])
        done += len(targets)
    return {t: models[t] for t in kinds}


def trained_model(spec: TargetSpec, kind: str, booster: Any, evals_result: dict) -> Any:
    """The :class:`~.train.TrainedModel` of a target's booster, cut at its best round when early stopping."""
    from .train import TrainedModel, best_model

    booster, best, history = best_model(booster, evals_result, spec.patience)
    return TrainedModel(spec.target, booster, best, history["valid"], kind, spec.params["objective"], history["train"], spec.params)
