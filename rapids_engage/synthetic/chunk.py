"""One chunk of synthetic rows: its draws (its own random stream, the same in any order), then its engagements
given the previous day's per-user history (:class:`Yesterday`, summed from the chunks by :class:`Today`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..hashing import combine, splitmix64
from ..schema import TARGETS, TRUE_PROB_PREFIX
from .spec import Step, SyntheticSpec
from .world import (
    ENGAGE_DELAY_S,
    FOLLOW_EFFECTS,
    FOLLOW_RATE,
    HASHTAG_COUNT_PROBS,
    HISTORY_EFFECTS,
    LENGTH_EFFECTS,
    LINK_RATE,
    LOG_LEN_MEAN,
    LOG_LEN_SD,
    MAX_TOKENS,
    MEDIA_PROBS,
    MIN_TOKENS,
    N_LINKS,
    PAIR_SD,
    RATES,
    T,
    TOKEN_VARIANTS,
    TYPE_EFFECTS,
    TYPE_PROBS,
    World,
    draw_ranks,
    salt,
    sigmoid,
    uniform,
)


@dataclass(frozen=True)
class Yesterday:
    """Per-user impressions and engagements of the previous day (read-only while a day is generated)."""

    imp: np.ndarray
    eng: np.ndarray

    @classmethod
    def none(cls, n: int) -> Yesterday:
        return cls(np.zeros(n, np.int32), np.zeros((n, 4), np.int32))

    def term(self, u: np.ndarray) -> np.ndarray:
        """(n, 4) history logit term: HISTORY_EFFECTS * shrunk (yesterday's rate - overall rate)."""
        imp = self.imp[u].astype(np.float64)[:, None]
        rate = self.eng[u] / np.maximum(imp, 1.0)
        return np.where(imp > 0, HISTORY_EFFECTS * (rate - RATES) * imp / (imp + 1.0), 0.0)


@dataclass
class Today:
    """Per-user impressions and engagements of the day being generated, summed chunk by chunk."""

    imp: np.ndarray
    eng: np.ndarray

    @classmethod
    def empty(cls, n: int) -> Today:
        return cls(np.zeros(n, np.int32), np.zeros((n, 4), np.int32))

    def add(self, u: np.ndarray, engaged: np.ndarray) -> None:
        n = len(self.imp)
        self.imp += np.bincount(u, minlength=n).astype(np.int32)
        for j in range(4):
            self.eng[:, j] += np.bincount(u, weights=engaged[:, j], minlength=n).astype(np.int32)

    def close(self) -> Yesterday:
        """This day as the next day's yesterday."""
        return Yesterday(self.imp, self.eng)


# ---------------------------------------------------------------- one chunk


def draw_rows(w: World, rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """The sampled (integer-coded) attributes of ``n`` rows."""
    u = w.user_perm[draw_ranks(rng, w.user_cdf, n)]
    c = w.creator_perm[draw_ranks(rng, w.creator_cdf, n)]
    follow_p = np.where(w.top_creator[c], FOLLOW_RATE[1], FOLLOW_RATE[0])
    follows = uniform(combine([u, c], int(salt(w.seed, 6)))) < follow_p  # fixed per pair
    length = np.clip(np.round(np.exp(rng.normal(LOG_LEN_MEAN, LOG_LEN_SD, n))), MIN_TOKENS, MAX_TOKENS).astype(np.int64)
    return {
        "u": u,
        "c": c,
        "follows": follows,
        "length": length,
        "lang": draw_ranks(rng, w.lang_cdf, n),
        "type": np.searchsorted(np.cumsum(TYPE_PROBS)[:-1], rng.random(n), side="right"),
        "media": np.searchsorted(np.cumsum(MEDIA_PROBS)[:-1], rng.random(n), side="right"),
    }


def logits_without_history(w: World, r: dict[str, np.ndarray], mood: np.ndarray) -> np.ndarray:
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
        tag[k][n_tags > k] = 1 + draw_ranks(rng, w.hashtag_cdf, int((n_tags > k).sum()))
    has_link = rng.random(n) < LINK_RATE
    link = np.where(has_link, 1 + rng.integers(0, N_LINKS, n), 0)
    domain = np.where(has_link, 1 + draw_ranks(rng, w.domain_cdf, n), 0)
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


def draw_chunk(w: World, spec: SyntheticSpec, step: Step, mood: np.ndarray) -> _Drawn:
    """The history-free part of the chunk ``step`` (its own random stream: the same in any order)."""
    rng = np.random.default_rng([spec.seed, 2, step.day, step.index])
    n, first_row = step.rows, step.first_row
    ts = np.sort(rng.integers(step.window[0], step.window[1], n, dtype=np.int64))
    r = draw_rows(w, rng, n)
    z = logits_without_history(w, r, mood)
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


def engage(w: World, d: _Drawn, yesterday: Yesterday) -> tuple[dict[str, pa.Array], pa.Table, np.ndarray]:
    """A drawn chunk's engagements given the previous day: (canonical columns, truth table, (n, 4) labels)."""
    p = sigmoid(d.z + yesterday.term(d.u) + w.base)
    engaged = d.draws < p
    cols = dict(d.cols)
    for j, t in enumerate(T):
        cols[TARGETS[t]] = pa.array(d.ts + d.delay[:, j], mask=~engaged[:, j])
    truth = pa.table({"tweet_id": d.tweet_ids, **{TRUE_PROB_PREFIX + t: p[:, j] for j, t in enumerate(T)}})
    return cols, truth, engaged
