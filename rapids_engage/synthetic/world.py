"""The synthetic generator's world: its constants and effects, and everything fixed for a run (:class:`World`).

Engaging users and creators are Zipf-distributed over one id space; each engagement's logit is a sum of
effects of the engaging user, the creator, the (user, creator) pair, language, tweet type, media, the follow
flag, text length, the user's engagements on the previous day and a slowly drifting per-user "mood"
(:func:`moods`).
"""

from __future__ import annotations

import calendar
from collections.abc import Iterator

import numpy as np
import pyarrow as pa

from ..hashing import splitmix64
from ..schema import TARGETS, TWEET_TYPES
from .ids import hex_ids
from .spec import SyntheticSpec

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
_MASK64 = (1 << 64) - 1


def _pool(strings: list[str] | np.ndarray) -> pa.Array:
    return pa.array(list(strings), type=pa.large_string())


# ---------------------------------------------------------------- sampling helpers


def _zipf_cdf(n: int, exponent: float, offset: float) -> np.ndarray:
    w = 1.0 / (np.arange(1, n + 1, dtype=np.float64) + offset) ** exponent
    cdf = np.cumsum(w)
    return cdf / cdf[-1]


def draw_ranks(rng: np.random.Generator, cdf: np.ndarray, n: int) -> np.ndarray:
    """``n`` ranks (0-based) from the distribution with this CDF."""
    return np.minimum(np.searchsorted(cdf, rng.random(n)), len(cdf) - 1)


def uniform(h: np.ndarray) -> np.ndarray:
    """A uniform [0, 1) float from each uint64 hash."""
    return (h >> np.uint64(11)).astype(np.float64) * 2.0**-53


def sigmoid(z: np.ndarray) -> np.ndarray:
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


def moods(w: World, spec: SyntheticSpec) -> Iterator[np.ndarray]:
    """Every turn's per-user mood: a random walk of its own stream."""
    rng, mood = np.random.default_rng([spec.seed, 3]), w.mood
    while True:
        yield mood
        noise = rng.normal(0.0, MOOD_SD * np.sqrt(1 - MOOD_KEEP**2), spec.users)
        mood = (MOOD_KEEP * mood + noise).astype(np.float32)
