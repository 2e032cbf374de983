"""Synthetic RecSys Challenge 2021 data with planted signal and known true probabilities.

The embedded default dataset and the benchmark input. Engaging users and
creators are Zipf-distributed over one id space; each engagement's logit is a
sum of effects of the engaging user, the creator, the (user, creator) pair,
language, tweet type, media, the follow flag, text length, the user's
engagements on the previous day and a slowly drifting per-user "mood". The
true probability of every row is written beside the data (``truth/``), so
reports can show the oracle RCE. Generation runs day by day in chunks of at
most ``chunk_rows`` rows, each of its own random stream; threads (one per core,
at most 8, by default) draw and write up to ``workers`` chunks at once, so at most
``workers × chunk_rows`` rows sit in memory, never 100M+. A day's engagements
wait only for the previous day's (the history term): the output depends only
on the spec (deterministic per seed, the same bytes for any ``workers``).

Layout (``fmt="parquet"``)::

    <out>/data/day=YYYY-MM-DD/part-NNNNN.parquet    canonical schema (schema.py), no day column
    <out>/truth/day=YYYY-MM-DD/part-NNNNN.parquet   tweet_id, p_like, p_retweet, p_reply, p_quote
    <out>/synthetic.json                            spec, rows, positive rates (written last)

``fmt="raw"`` writes ``<out>/raw/part-NNNNN.tsv`` in the official text format
(24 ``\\x01``-separated fields, 32-hex-char ids, ``true``/``false`` flags,
empty engagement field = no engagement) instead of ``data/``; the first 16 hex
chars of an id are the two's-complement bits of the canonical int64 id
(:func:`hex_to_ids` inverts :func:`hex_ids`).
"""

from __future__ import annotations

import calendar
import datetime as dt
import json
import os
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from .atomic import remove_stale_partials, write_file
from .hashing import combine, splitmix64
from .schema import DTYPES, RAW_COLUMNS, TARGETS, TRUE_PROB_PREFIX, TWEET_TYPES

VERSION = 1
TARGET_RATES: dict[str, float] = {"like": 0.40, "retweet": 0.09, "reply": 0.03, "quote": 0.007}
T: list[str] = list(TARGETS)  # like, retweet, reply, quote (column j of every (n, 4) array)
RATES = np.array([TARGET_RATES[t] for t in T])

# Popularity: p(rank k) ∝ 1 / (k + offset) ** exponent (Zipf–Mandelbrot; the offset keeps one
# engaging user from owning ~10% of all rows).
USER_ZIPF = (1.05, 10.0)
CREATOR_ZIPF = (1.1, 2.0)
TOP_CREATOR_SHARE = 0.01  # the most popular 1% of creators: more followers, verified, followed back

MEDIA_OPTIONS = ("", "Photo", "Photo\tPhoto", "Video", "GIF", "Photo\tVideo")
MEDIA_PROBS = (0.70, 0.15, 0.05, 0.07, 0.02, 0.01)
TYPE_PROBS = (0.55, 0.25, 0.05, 0.15)  # TWEET_TYPES order: TopLevel, Retweet, Quote, Reply
HASHTAG_COUNT_PROBS = (0.75, 0.15, 0.07, 0.03)  # 0, 1, 2, 3 hashtags
LINK_RATE = 0.15
FOLLOW_RATE = (0.20, 0.35)  # P(engagee follows engager): other creators, top creators

#: Effect of the tweet type on each target's logit (rows: TWEET_TYPES, columns: T).
TYPE_EFFECTS = np.array(
    [
        [0.0, 0.0, 0.0, 0.0],  # TopLevel
        [-0.4, 0.3, -0.6, -0.3],  # Retweet
        [0.1, -0.2, 0.3, 0.6],  # Quote: more quotes
        [0.3, -0.5, 0.9, -0.2],  # Reply: more replies
    ]
)
FOLLOW_EFFECTS = np.array([0.9, 0.7, 0.6, 0.5])
LENGTH_EFFECTS = np.array([-0.15, 0.1, 0.25, 0.2])  # per sd of log(text length)
HISTORY_EFFECTS = np.array([1.5, 3.0, 4.0, 6.0])  # per unit of (yesterday's rate - overall rate)
USER_SD, CREATOR_SD, PAIR_SD, LANG_SD, MEDIA_SD = 0.7, 0.6, 0.35, 0.4, 0.3
#: Effects of the observable profiles, per sd of log(1 + count): the engaging user's following
#: count and the creator's follower count (so the raw columns explain part of the user effects).
FOLLOWING_EFFECTS = np.array([0.25, 0.2, 0.15, 0.15])
FOLLOWER_EFFECTS = np.array([-0.2, 0.1, -0.25, -0.1])
SHARED = 0.7  # share of the user / creator effect variance common to all targets
MOOD_SD, MOOD_KEEP = 0.2, 0.8  # stationary sd and daily autocorrelation of the mood walk
LOG_LEN_MEAN, LOG_LEN_SD = 3.2, 0.6
MIN_TOKENS, MAX_TOKENS, TOKEN_VARIANTS = 5, 120, 8
N_LANGUAGES, N_HASHTAGS, N_LINKS, N_DOMAINS = 60, 20_000, 100_000, 5_000
ENGAGE_DELAY_S = 7200.0  # mean delay of an engagement after the tweet
CALIBRATION_ROWS = 200_000
_MASK64 = (1 << 64) - 1
_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)


@dataclass(frozen=True)
class SyntheticSpec:
    """What to generate: ``rows`` rows over ``days`` days from ``start`` (UTC), per ``seed``."""

    rows: int = 1_000_000
    days: int = 28
    seed: int = 42
    start: str = "2021-02-04"
    n_users: int | None = None  # default: max(1000, rows // 20)
    chunk_rows: int = 1_000_000  # rows per chunk (a file); each worker thread holds one chunk at once

    @property
    def users(self) -> int:
        return self.n_users if self.n_users is not None else max(1000, self.rows // 20)

    @property
    def start_ts(self) -> int:
        """Unix seconds of day 0, 00:00 UTC."""
        return calendar.timegm(dt.date.fromisoformat(self.start).timetuple())


# ---------------------------------------------------------------- hex ids


def _hex16(u: np.ndarray, out: np.ndarray) -> None:
    """Write the 16 lowercase hex chars of each uint64 of ``u`` into ``out`` (n, 16) uint8."""
    for i in range(16):
        out[:, i] = _HEX[(u >> np.uint64(60 - 4 * i)) & np.uint64(15)]


def _hex32_bytes(ids: np.ndarray) -> np.ndarray:
    """(n, 32) ASCII bytes: the id's own 16 hex chars, then 16 of a mix of it."""
    u = np.ascontiguousarray(ids, dtype=np.int64).view(np.uint64)
    out = np.empty((len(u), 32), dtype=np.uint8)
    _hex16(u, out[:, :16])
    _hex16(splitmix64(u ^ np.uint64(0x5EED5EED5EED5EED)), out[:, 16:])
    return out


def hex_ids(ids: np.ndarray) -> np.ndarray:
    """32-char lowercase hex ids (numpy str) of int64 ids; see :func:`hex_to_ids`."""
    return _hex32_bytes(ids).view("S32").ravel().astype(str)


def hex_to_ids(hex_strings: np.ndarray | list[str]) -> np.ndarray:
    """The int64 id of each 32-hex-char id (either case): its first 16 hex chars as uint64, viewed as
    int64, as the ingest reads them; a ValueError (:class:`~.ingest.ids.InvalidHexIdError`) for a string
    that is not such an id."""
    from .ingest.ids import hex_id_to_int64

    return np.asarray(hex_id_to_int64(np.asarray(hex_strings, dtype=str)), dtype=np.int64)


def _arrow_hex(ids: np.ndarray) -> pa.Array:
    """:func:`hex_ids` as an Arrow large_string array, built from one bytes buffer."""
    data = _hex32_bytes(ids)
    offsets = np.arange(0, 32 * (len(data) + 1), 32, dtype=np.int64)
    return pa.Array.from_buffers(pa.large_string(), len(data), [None, pa.py_buffer(offsets), pa.py_buffer(data)])


def _pool(strings: list[str] | np.ndarray) -> pa.Array:
    return pa.array(list(strings), type=pa.large_string())


# ---------------------------------------------------------------- sampling helpers


def _zipf_cdf(n: int, exponent: float, offset: float) -> np.ndarray:
    w = 1.0 / (np.arange(1, n + 1, dtype=np.float64) + offset) ** exponent
    cdf = np.cumsum(w)
    return cdf / cdf[-1]


def _draw(rng: np.random.Generator, cdf: np.ndarray, n: int) -> np.ndarray:
    """``n`` ranks (0-based) from the distribution with this CDF."""
    return np.minimum(np.searchsorted(cdf, rng.random(n)), len(cdf) - 1)


def uniform(h: np.ndarray) -> np.ndarray:
    """A uniform [0, 1) float from each uint64 hash."""
    return (h >> np.uint64(11)).astype(np.float64) * 2.0**-53


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def salt(seed: int, stream: int) -> np.uint64:
    """A uint64 salt per (seed, stream)."""
    return splitmix64(np.array([(seed * 0x100000001B3 + stream) & _MASK64], dtype=np.uint64))[0]


def _effects(rng: np.random.Generator, n: int, sd: float) -> np.ndarray:
    """(n, 4) per-target effects: SHARED of the variance common to the targets."""
    common = rng.normal(0.0, 1.0, (n, 1))
    own = rng.normal(0.0, 1.0, (n, 4))
    return (sd * (np.sqrt(SHARED) * common + np.sqrt(1 - SHARED) * own)).astype(np.float32)


def std_log(counts: np.ndarray) -> np.ndarray:
    """Standardized log(1 + count)."""
    x = np.log1p(counts.astype(np.float64))
    return (x - x.mean()) / max(float(x.std()), 1e-9)


# ---------------------------------------------------------------- the world


class World:
    """Everything fixed for a run: user ids, popularity, profiles, effects, string pools."""

    def __init__(self, spec: SyntheticSpec) -> None:
        rng = np.random.default_rng([spec.seed, 0])
        n = spec.users
        self.seed = spec.seed
        self.user_ids = splitmix64(np.arange(n, dtype=np.uint64) + salt(spec.seed, 1)).view(np.int64)
        self.user_perm = rng.permutation(n)  # popularity rank -> user index (engaging)
        self.creator_perm = rng.permutation(n)  # popularity rank -> user index (creator)
        self.user_cdf = _zipf_cdf(n, *USER_ZIPF)
        self.creator_cdf = _zipf_cdf(n, *CREATOR_ZIPF)
        self._profiles(rng, n)
        self.user_eff = _effects(rng, n, USER_SD) + (FOLLOWING_EFFECTS * std_log(self.following)[:, None]).astype(np.float32)
        self.creator_eff = _effects(rng, n, CREATOR_SD) + (FOLLOWER_EFFECTS * std_log(self.followers)[:, None]).astype(np.float32)
        self.lang_eff = rng.normal(0.0, LANG_SD, (N_LANGUAGES, 4))
        self.media_eff = rng.normal(0.0, MEDIA_SD, (len(MEDIA_OPTIONS), 4))
        self.media_eff[0] = 0.0
        self.mood = rng.normal(0.0, MOOD_SD, n).astype(np.float32)
        self.base = np.zeros(4)
        self._pools(rng)

    def _profiles(self, rng: np.random.Generator, n: int) -> None:
        rank = np.empty(n, dtype=np.int64)
        rank[self.creator_perm] = np.arange(n)
        self.top_creator = rank < max(10, int(n * TOP_CREATOR_SHARE))
        boost = 1.0 + 2000.0 / (1.0 + rank) ** 0.8
        self.followers = np.round(np.exp(rng.normal(4.0, 1.3, n)) * boost).astype(np.int64)
        self.following = np.round(np.exp(rng.normal(5.0, 1.0, n))).astype(np.int64)
        self.verified = rng.random(n) < np.where(self.top_creator, 0.2, 0.015)
        t0, t1 = calendar.timegm((2008, 1, 1, 0, 0, 0)), calendar.timegm((2021, 1, 1, 0, 0, 0))
        self.created = rng.integers(t0, t1, n, dtype=np.int64)

    def _pools(self, rng: np.random.Generator) -> None:
        def ids(count: int, stream: int) -> np.ndarray:
            return splitmix64(np.arange(count, dtype=np.uint64) + salt(self.seed, stream)).view(np.int64)

        self.languages = _pool(hex_ids(ids(N_LANGUAGES, 2)))
        self.lang_cdf = _zipf_cdf(N_LANGUAGES, 1.3, 0.0)
        tags = hex_ids(ids(N_HASHTAGS, 3))
        self.hashtags = _pool(["", *tags])  # index 0: none
        self.hashtags_tab = _pool(["", *("\t" + tags)])  # the 2nd and 3rd hashtags
        self.hashtag_cdf = _zipf_cdf(N_HASHTAGS, 1.0, 0.0)
        self.links = _pool(["", *hex_ids(ids(N_LINKS, 4))])
        self.domains = _pool(["", *hex_ids(ids(N_DOMAINS, 5))])
        self.domain_cdf = _zipf_cdf(N_DOMAINS, 1.2, 0.0)
        self.media = _pool(MEDIA_OPTIONS)
        self.types = _pool(TWEET_TYPES)
        tokens = []
        for length in range(MIN_TOKENS, MAX_TOKENS + 1):
            for _ in range(TOKEN_VARIANTS):
                body = rng.zipf(1.3, length - 2) % 28_000 + 1000
                tokens.append("\t".join(["101", *map(str, body.tolist()), "102"]))
        self.tokens = _pool(tokens)  # index (length - MIN_TOKENS) * TOKEN_VARIANTS + variant


@dataclass(frozen=True)
class _Yesterday:
    """Per-user impressions and engagements of the previous day (read-only while a day is generated)."""

    imp: np.ndarray
    eng: np.ndarray

    @classmethod
    def none(cls, n: int) -> _Yesterday:
        return cls(np.zeros(n, np.int32), np.zeros((n, 4), np.int32))

    def term(self, u: np.ndarray) -> np.ndarray:
        """(n, 4) history logit term: HISTORY_EFFECTS * shrunk (yesterday's rate - overall rate)."""
        imp = self.imp[u].astype(np.float64)[:, None]
        rate = self.eng[u] / np.maximum(imp, 1.0)
        return np.where(imp > 0, HISTORY_EFFECTS * (rate - RATES) * imp / (imp + 1.0), 0.0)


@dataclass
class _Today:
    """Per-user impressions and engagements of the day being generated, summed chunk by chunk."""

    imp: np.ndarray
    eng: np.ndarray

    @classmethod
    def empty(cls, n: int) -> _Today:
        return cls(np.zeros(n, np.int32), np.zeros((n, 4), np.int32))

    def add(self, u: np.ndarray, engaged: np.ndarray) -> None:
        n = len(self.imp)
        self.imp += np.bincount(u, minlength=n).astype(np.int32)
        for j in range(4):
            self.eng[:, j] += np.bincount(u, weights=engaged[:, j], minlength=n).astype(np.int32)

    def close(self) -> _Yesterday:
        """This day as the next day's yesterday."""
        return _Yesterday(self.imp, self.eng)


# ---------------------------------------------------------------- one chunk


def _rows(w: World, rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """The sampled (integer-coded) attributes of ``n`` rows."""
    u = w.user_perm[_draw(rng, w.user_cdf, n)]
    c = w.creator_perm[_draw(rng, w.creator_cdf, n)]
    follow_p = np.where(w.top_creator[c], FOLLOW_RATE[1], FOLLOW_RATE[0])
    follows = uniform(combine([u, c], int(salt(w.seed, 6)))) < follow_p  # fixed per pair
    length = np.clip(np.round(np.exp(rng.normal(LOG_LEN_MEAN, LOG_LEN_SD, n))), MIN_TOKENS, MAX_TOKENS).astype(np.int64)
    return {
        "u": u,
        "c": c,
        "follows": follows,
        "length": length,
        "lang": _draw(rng, w.lang_cdf, n),
        "type": np.searchsorted(np.cumsum(TYPE_PROBS)[:-1], rng.random(n), side="right"),
        "media": np.searchsorted(np.cumsum(MEDIA_PROBS)[:-1], rng.random(n), side="right"),
    }


def _logits(w: World, r: dict[str, np.ndarray], mood: np.ndarray) -> np.ndarray:
    """(n, 4) logits of the rows ``r`` without the history term and the intercepts ``w.base``."""
    u, c = r["u"], r["c"]
    pair = uniform(combine([u, c], int(salt(w.seed, 7))))
    z = (pair - 0.5) * (np.sqrt(12.0) * PAIR_SD)
    z = z[:, None] + w.user_eff[u] + w.creator_eff[c] + mood[u][:, None]
    z += w.lang_eff[r["lang"]] + w.media_eff[r["media"]] + TYPE_EFFECTS[r["type"]]
    z += FOLLOW_EFFECTS * r["follows"][:, None]
    z += LENGTH_EFFECTS * ((np.log(r["length"]) - LOG_LEN_MEAN) / LOG_LEN_SD)[:, None]
    return z


def _strings(w: World, rng: np.random.Generator, r: dict[str, np.ndarray]) -> dict[str, pa.Array]:
    """The string / list columns (Arrow large_string), gathered from the pools."""
    n = len(r["u"])
    variant = rng.integers(0, TOKEN_VARIANTS, n)
    n_tags = np.searchsorted(np.cumsum(HASHTAG_COUNT_PROBS)[:-1], rng.random(n), side="right")
    tag = [np.zeros(n, dtype=np.int64) for _ in range(3)]
    for k in range(3):
        tag[k][n_tags > k] = 1 + _draw(rng, w.hashtag_cdf, int((n_tags > k).sum()))
    has_link = rng.random(n) < LINK_RATE
    link = np.where(has_link, 1 + rng.integers(0, N_LINKS, n), 0)
    domain = np.where(has_link, 1 + _draw(rng, w.domain_cdf, n), 0)
    hashtags = pc.binary_join_element_wise(
        w.hashtags.take(tag[0]), w.hashtags_tab.take(tag[1]), w.hashtags_tab.take(tag[2]), pa.scalar("", pa.large_string())
    )
    return {
        "text_tokens": w.tokens.take((r["length"] - MIN_TOKENS) * TOKEN_VARIANTS + variant),
        "hashtags": hashtags,
        "present_media": w.media.take(r["media"]),
        "present_links": w.links.take(link),
        "present_domains": w.domains.take(domain),
        "tweet_type": w.types.take(r["type"]),
        "language": w.languages.take(r["lang"]),
    }


@dataclass
class _Drawn:
    """A chunk's part that does not depend on the previous day: every random draw, the logits without the
    history term, the columns but the engagements."""

    u: np.ndarray
    z: np.ndarray  # (n, 4) logits without the history term and the intercepts
    draws: np.ndarray  # (n, 4) uniforms: engaged where below the probability
    ts: np.ndarray
    delay: np.ndarray  # (n, 4) seconds from the tweet to each engagement
    tweet_ids: np.ndarray
    cols: dict[str, pa.Array]


def _draw_chunk(w: World, spec: SyntheticSpec, step: _Step, mood: np.ndarray) -> _Drawn:
    """The history-free part of the chunk ``step`` (its own random stream: the same in any order)."""
    rng = np.random.default_rng([spec.seed, 2, step.day, step.index])
    n, first_row = step.rows, step.first_row
    ts = np.sort(rng.integers(step.window[0], step.window[1], n, dtype=np.int64))
    r = _rows(w, rng, n)
    z = _logits(w, r, mood)
    draws = rng.random((n, 4))
    delay = 1 + rng.exponential(ENGAGE_DELAY_S, (n, 4)).astype(np.int64)
    tweet_ids = splitmix64(np.arange(first_row, first_row + n, dtype=np.uint64) ^ salt(spec.seed, 8)).view(np.int64)
    u, c = r["u"], r["c"]
    cols: dict[str, pa.Array] = {
        **_strings(w, rng, r),
        "tweet_id": pa.array(tweet_ids),
        "tweet_timestamp": pa.array(ts),
        "engaged_with_user_id": pa.array(w.user_ids[c]),
        "engaged_with_user_follower_count": pa.array(w.followers[c]),
        "engaged_with_user_following_count": pa.array(w.following[c]),
        "engaged_with_user_is_verified": pa.array(w.verified[c]),
        "engaged_with_user_account_creation": pa.array(w.created[c]),
        "engaging_user_id": pa.array(w.user_ids[u]),
        "engaging_user_follower_count": pa.array(w.followers[u]),
        "engaging_user_following_count": pa.array(w.following[u]),
        "engaging_user_is_verified": pa.array(w.verified[u]),
        "engaging_user_account_creation": pa.array(w.created[u]),
        "engagee_follows_engager": pa.array(r["follows"]),
    }
    return _Drawn(u, z, draws, ts, delay, tweet_ids, cols)


def _engage(w: World, d: _Drawn, yesterday: _Yesterday) -> tuple[dict[str, pa.Array], pa.Table, np.ndarray]:
    """A drawn chunk's engagements given the previous day: (canonical columns, truth table, (n, 4) labels)."""
    p = _sigmoid(d.z + yesterday.term(d.u) + w.base)
    engaged = d.draws < p
    cols = dict(d.cols)
    for j, t in enumerate(T):
        cols[TARGETS[t]] = pa.array(d.ts + d.delay[:, j], mask=~engaged[:, j])
    truth = pa.table({"tweet_id": d.tweet_ids, **{TRUE_PROB_PREFIX + t: p[:, j] for j, t in enumerate(T)}})
    return cols, truth, engaged


# ---------------------------------------------------------------- calibration


def _bisect_base(z: np.ndarray) -> np.ndarray:
    """Per-target intercepts b with mean(sigmoid(z + b)) = TARGET_RATES (bisection)."""
    lo, hi = np.full(4, -15.0), np.full(4, 10.0)
    for _ in range(40):
        mid = (lo + hi) / 2
        low = _sigmoid(z + mid).mean(axis=0) < RATES
        lo, hi = np.where(low, mid, lo), np.where(low, hi, mid)
    return (lo + hi) / 2


def _calibrate(w: World, spec: SyntheticSpec) -> None:
    """Set ``w.base``: fit on a history-free sample, simulate one day, refit with its history."""
    rng = np.random.default_rng([spec.seed, 1])

    def logits(r: dict[str, np.ndarray], yesterday: _Yesterday) -> np.ndarray:
        return _logits(w, r, w.mood) + yesterday.term(r["u"])

    none = _Yesterday.none(spec.users)
    w.base = _bisect_base(logits(_rows(w, rng, CALIBRATION_ROWS), none))
    day, today = _rows(w, rng, min(max(spec.rows // spec.days, 1), 1_000_000)), _Today.empty(spec.users)
    today.add(day["u"], rng.random((len(day["u"]), 4)) < _sigmoid(logits(day, none) + w.base))
    w.base = _bisect_base(logits(_rows(w, rng, CALIBRATION_ROWS), today.close()))


# ---------------------------------------------------------------- writing


def _canonical_schema() -> pa.Schema:
    """The Arrow schema of the canonical columns, with pandas metadata (Int64, str) attached."""
    template = pd.DataFrame({c: pd.Series([], dtype=DTYPES[c]) for c in RAW_COLUMNS})
    schema = pa.Schema.from_pandas(template, preserve_index=False)
    return pa.schema([pa.field(c, schema.field(c).type) for c in RAW_COLUMNS], metadata=schema.metadata)


def _write_parquet(cols: dict[str, pa.Array], schema: pa.Schema, path: Path) -> None:
    table = pa.Table.from_arrays([cols[c] for c in RAW_COLUMNS], schema=schema)
    write_file(path, lambda p: pq.write_table(table, p))


def _write_tsv(cols: dict[str, pa.Array], path: Path) -> None:
    """The official text format: ``\\x01``-separated fields, hex ids, true/false, "" = no engagement."""
    raw = dict(cols)
    for c in ("tweet_id", "engaged_with_user_id", "engaging_user_id"):
        raw[c] = _arrow_hex(cols[c].to_numpy())
    table = pa.table({c: raw[c] for c in RAW_COLUMNS})
    options = pcsv.WriteOptions(include_header=False, delimiter="\x01", quoting_style="none")
    write_file(path, lambda p: pcsv.write_csv(table, str(p), options))


def day_sizes(spec: SyntheticSpec) -> list[int]:
    """Rows per day: ``rows // days`` each, the remainder one each on the last days."""
    base, extra = divmod(spec.rows, spec.days)
    return [base + (1 if d >= spec.days - extra else 0) for d in range(spec.days)]


def _chunks(size: int, limit: int) -> list[int]:
    """Split ``size`` rows into the fewest near-equal chunks of at most ``limit`` rows."""
    k = -(-size // limit)
    return [size // k + (1 if i < size % k else 0) for i in range(k)]


def _check(spec: SyntheticSpec, fmt: str) -> None:
    if fmt not in ("parquet", "raw"):
        raise ValueError(f"fmt must be 'parquet' or 'raw', got {fmt!r}")
    if spec.rows < 1 or spec.days < 1 or spec.chunk_rows < 1 or spec.users < 1:
        raise ValueError(f"rows, days, chunk_rows and n_users must be >= 1: {spec}")
    if spec.seed < 0:
        raise ValueError(f"seed must be >= 0, got {spec.seed}")
    dt.date.fromisoformat(spec.start)


def _remove_stale(out: Path, written: set[Path]) -> None:
    """Delete part files of an earlier run in this run's folders that this run did not write, and what killed
    runs left half-written."""
    remove_stale_partials(out)
    for sub, pattern in (("data", "part-*.parquet"), ("truth", "part-*.parquet"), ("raw", "part-*.tsv")):
        for f in (out / sub).rglob(pattern):
            if f not in written:
                f.unlink()


class _Step(NamedTuple):
    """One chunk of the plan: its day, date, index in the day, rows, first row, [t0, t1) timestamp window and
    turn (how many days with rows come before its own: the history and mood it sees)."""

    day: int
    date: str
    index: int
    rows: int
    first_row: int
    window: tuple[int, int]
    turn: int


def _plan(spec: SyntheticSpec) -> list[_Step]:
    """Every chunk, in order. A day's chunks are consecutive time slices of it, so the files are in time order."""
    plan: list[_Step] = []
    first_row, turn = 0, 0
    for day, size in enumerate(day_sizes(spec)):
        date = (dt.date.fromisoformat(spec.start) + dt.timedelta(days=day)).isoformat()
        t0, start = spec.start_ts + day * 86400, 0
        for i, n in enumerate(_chunks(size, spec.chunk_rows) if size else []):
            lo, hi = t0 + start * 86400 // size, t0 + (start + n) * 86400 // size
            plan.append(_Step(day, date, i, n, first_row, (lo, max(hi, lo + 1)), turn))
            start, first_row = start + n, first_row + n
        turn += size > 0
    return plan


@dataclass(frozen=True)
class _Job:
    """What every chunk of a run shares."""

    world: World
    spec: SyntheticSpec
    out: Path
    fmt: str
    schema: pa.Schema


def _paths(job: _Job, k: int, step: _Step) -> tuple[Path, Path]:
    """(data file, truth file) of the ``k``-th chunk."""
    name = f"part-{k:05d}"
    truth = job.out / "truth" / f"day={step.date}" / f"{name}.parquet"
    if job.fmt == "raw":
        return job.out / "raw" / f"{name}.tsv", truth
    return job.out / "data" / f"day={step.date}" / f"{name}.parquet", truth


def _make_chunk(job: _Job, k: int, step: _Step, mood: np.ndarray, yesterday: Future, labels: Future) -> None:
    """Draw, engage (once ``yesterday`` is known) and write the ``k``-th chunk; its (users, labels) go to
    ``labels`` before the files are written (the next day waits for them, not for the writes)."""
    try:
        drawn = _draw_chunk(job.world, job.spec, step, mood)
        cols, truth, engaged = _engage(job.world, drawn, yesterday.result())
    except BaseException as exc:
        labels.set_exception(exc)
        raise
    labels.set_result((drawn.u, engaged))
    data_path, truth_path = _paths(job, k, step)
    if job.fmt == "raw":
        _write_tsv(cols, data_path)
    else:
        _write_parquet(cols, job.schema, data_path)
    write_file(truth_path, lambda p: pq.write_table(truth, p))


def _moods(w: World, spec: SyntheticSpec) -> Iterator[np.ndarray]:
    """Every turn's per-user mood: a random walk of its own stream."""
    rng, mood = np.random.default_rng([spec.seed, 3]), w.mood
    while True:
        yield mood
        noise = rng.normal(0.0, MOOD_SD * np.sqrt(1 - MOOD_KEEP**2), spec.users)
        mood = (MOOD_KEEP * mood + noise).astype(np.float32)


def _done(fn: Callable, *args: object) -> Future:
    """``fn(*args)`` called now, as a finished future (the serial path)."""
    future: Future = Future()
    future.set_result(fn(*args))
    return future


class _Stopped(RuntimeError):
    """Given to the chunks still waiting for a previous day when a run stops early."""


class _Chunks:
    """The chunks of a run in flight (at most ``workers``): submitted in plan order with their day's mood and
    yesterday, finished (written) in plan order."""

    def __init__(self, job: _Job, plan: list[_Step], workers: int, turns: list[Future],
                 on_chunk: Callable[[int, int], None] | None) -> None:
        self.job, self.plan, self.workers, self.turns, self.on_chunk = job, plan, workers, turns, on_chunk
        self.pool = ThreadPoolExecutor(min(workers, len(plan)), thread_name_prefix="synthetic") if workers > 1 else None
        self.moods, self.mood, self.mood_turn = _moods(job.world, job.spec), job.world.mood, -1
        self.labels: dict[int, Future] = {}
        self.pending: deque[tuple[int, Future]] = deque()
        self.submitted = 0

    def labels_of(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(users, labels) of chunk ``k``, once drawn and engaged; chunks up to ``workers`` ahead submitted."""
        while self.submitted <= k or (len(self.pending) < self.workers and self.submitted < len(self.plan)):
            if len(self.pending) == self.workers:
                self.finish_oldest()
            self._submit()
        return self.labels.pop(k).result()

    def _submit(self) -> None:
        k, step = self.submitted, self.plan[self.submitted]
        while self.mood_turn < step.turn:
            self.mood, self.mood_turn = next(self.moods), self.mood_turn + 1
        self.labels[k] = Future()
        task = (_make_chunk, self.job, k, step, self.mood, self.turns[step.turn], self.labels[k])
        self.pending.append((k, self.pool.submit(*task) if self.pool else _done(*task)))
        self.submitted += 1

    def finish_oldest(self) -> None:
        """Wait for the oldest chunk in flight to be written (raising its error), then report progress."""
        k, future = self.pending.popleft()
        future.result()
        if self.on_chunk is not None:
            self.on_chunk(self.plan[k].first_row + self.plan[k].rows, self.job.spec.rows)

    def close(self) -> None:
        """Release the chunks waiting for a day that will not come; wait for the threads."""
        for turn in self.turns:
            if not turn.done():
                turn.set_exception(_Stopped("an earlier chunk failed or the run was interrupted"))
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)


def _run(job: _Job, plan: list[_Step], workers: int, on_chunk: Callable[[int, int], None] | None) -> np.ndarray:
    """Make every chunk of ``plan``, at most ``workers`` at once; the history in plan order. Positives per target."""
    users = job.spec.users
    turns = [Future() for _ in range(plan[-1].turn + 1)]  # each turn's yesterday, set when the previous ends
    turns[0].set_result(_Yesterday.none(users))
    today, positives = _Today.empty(users), np.zeros(4, dtype=np.int64)
    chunks = _Chunks(job, plan, workers, turns, on_chunk)
    try:
        for k, step in enumerate(plan):
            u, engaged = chunks.labels_of(k)
            today.add(u, engaged)
            positives += engaged.sum(axis=0)
            if step.turn + 1 < len(turns) and plan[k + 1].turn > step.turn:  # the last chunk of its day
                turns[step.turn + 1].set_result(today.close())
                today = _Today.empty(users)
        while chunks.pending:
            chunks.finish_oldest()
    finally:
        chunks.close()
    return positives


def generate(
    out_dir: str | Path,
    spec: SyntheticSpec,
    *,
    fmt: str = "parquet",
    on_chunk: Callable[[int, int], None] | None = None,
    workers: int | None = None,
) -> dict:
    """Write the dataset of ``spec`` under ``out_dir`` in ``fmt`` ("parquet" or "raw").

    ``workers`` threads (default: the cores this process may use; 1: serial) make up to that many chunks
    at once, the same bytes in any case. ``on_chunk(rows_done, rows_total)`` is called after each chunk,
    in order. Returns the info also written (last) to ``<out_dir>/synthetic.json``. Part files of an
    earlier run in the same folders are replaced or removed.
    """
    _check(spec, fmt)
    workers = _workers(workers)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "synthetic.json").unlink(missing_ok=True)
    world = World(spec)
    _calibrate(world, spec)
    job, plan = _Job(world, spec, out, fmt, _canonical_schema()), _plan(spec)
    positives = _run(job, plan, workers, on_chunk)
    _remove_stale(out, {p for k, step in enumerate(plan) for p in _paths(job, k, step)})
    info = {
        "spec": asdict(spec),
        "format": fmt,
        "rows": spec.rows,
        "positive_rates": {t: float(positives[j] / max(spec.rows, 1)) for j, t in enumerate(T)},
        "files": len(plan),
        "version": VERSION,
    }
    write_file(out / "synthetic.json", lambda p: p.write_text(json.dumps(info, indent=1)))
    return info


#: Default threads at most: past ~8 the serial part (world, calibration, the day-to-day history) bounds the
#: speed-up, while each thread holds a chunk (~0.54 GB per 1M rows).
MAX_DEFAULT_WORKERS = 8


def _workers(workers: int | None) -> int:
    """The threads to generate with: ``workers``, or the cores this process may use (at most
    :data:`MAX_DEFAULT_WORKERS`)."""
    if workers is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        return min(cores, MAX_DEFAULT_WORKERS)
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    return workers


def write_raw(
    out_dir: str | Path,
    spec: SyntheticSpec,
    *,
    on_chunk: Callable[[int, int], None] | None = None,
    workers: int | None = None,
) -> dict:
    """:func:`generate` in the official RecSys 2021 text format (``<out_dir>/raw/*.tsv``)."""
    return generate(out_dir, spec, fmt="raw", on_chunk=on_chunk, workers=workers)


__all__ = [
    "SyntheticSpec",
    "TARGET_RATES",
    "day_sizes",
    "generate",
    "hex_ids",
    "hex_to_ids",
    "splitmix64",
    "write_raw",
]
