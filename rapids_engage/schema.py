"""The RecSys Challenge 2021 schema and the typed (canonical) form the store reads.

Raw RecSys 2021 rows have 24 ``\\x01``-separated fields in the order of
``RAW_COLUMNS``. The canonical parquet form that every stage after ingest reads
keeps the same column names with these types:

* ids (``tweet_id``, ``engaged_with_user_id``, ``engaging_user_id``): int64
  (raw hex ids are hashed to int64 at ingest, so joins and group-bys are on
  8-byte keys instead of 32-byte strings);
* list columns (``text_tokens``, ``hashtags``, ``present_media``,
  ``present_links``, ``present_domains``): strings, tab-separated as in the raw
  files, empty string for an empty list;
* ``tweet_type`` and ``language``: strings;
* counts: int64; flags: bool; timestamps: int64 unix seconds;
* engagement timestamps: nullable int64 (null = no engagement).
"""

from __future__ import annotations

RAW_COLUMNS: tuple[str, ...] = (
    "text_tokens",
    "hashtags",
    "tweet_id",
    "present_media",
    "present_links",
    "present_domains",
    "tweet_type",
    "language",
    "tweet_timestamp",
    "engaged_with_user_id",
    "engaged_with_user_follower_count",
    "engaged_with_user_following_count",
    "engaged_with_user_is_verified",
    "engaged_with_user_account_creation",
    "engaging_user_id",
    "engaging_user_follower_count",
    "engaging_user_following_count",
    "engaging_user_is_verified",
    "engaging_user_account_creation",
    "engagee_follows_engager",
    "reply_timestamp",
    "retweet_timestamp",
    "retweet_with_comment_timestamp",
    "like_timestamp",
)

#: Columns of the RecSys 2021 test files (no engagement timestamps).
TEST_COLUMNS: tuple[str, ...] = RAW_COLUMNS[:20]

#: Canonical dtype per column (pandas spelling; cudf accepts the same names).
DTYPES: dict[str, str] = {
    "text_tokens": "str",
    "hashtags": "str",
    "tweet_id": "int64",
    "present_media": "str",
    "present_links": "str",
    "present_domains": "str",
    "tweet_type": "str",
    "language": "str",
    "tweet_timestamp": "int64",
    "engaged_with_user_id": "int64",
    "engaged_with_user_follower_count": "int64",
    "engaged_with_user_following_count": "int64",
    "engaged_with_user_is_verified": "bool",
    "engaged_with_user_account_creation": "int64",
    "engaging_user_id": "int64",
    "engaging_user_follower_count": "int64",
    "engaging_user_following_count": "int64",
    "engaging_user_is_verified": "bool",
    "engaging_user_account_creation": "int64",
    "engagee_follows_engager": "bool",
    "reply_timestamp": "Int64",
    "retweet_timestamp": "Int64",
    "retweet_with_comment_timestamp": "Int64",
    "like_timestamp": "Int64",
}

#: Engagement target name -> the timestamp column whose presence is the label.
TARGETS: dict[str, str] = {
    "like": "like_timestamp",
    "retweet": "retweet_timestamp",
    "reply": "reply_timestamp",
    "quote": "retweet_with_comment_timestamp",
}

TWEET_TYPES: tuple[str, ...] = ("TopLevel", "Retweet", "Quote", "Reply")

#: Event time of a row (the RecSys data has no impression time; the tweet's is used).
EVENT_TIME = "tweet_timestamp"
#: Seconds of a UTC day: event times (unix seconds) // this is their day.
DAY_SECONDS = 86_400
#: The event times taken as plausible (epoch seconds, 1990-01-01 to 2100-01-01 UTC): outside, a
#: time is probably in another unit (milliseconds) or mistyped.
PLAUSIBLE_TIMES = (631_152_000, 4_102_444_800)


def utc(t: int) -> str:
    """An event time (epoch seconds) for messages: ``2021-02-11 08:00 UTC``."""
    import datetime as dt

    return f"{dt.datetime.fromtimestamp(t, dt.timezone.utc):%Y-%m-%d %H:%M} UTC"
USER = "engaging_user_id"
CREATOR = "engaged_with_user_id"
#: Columns that identify a row; the hash fold of a row is computed from these.
ROW_KEY: tuple[str, ...] = ("tweet_id", "engaging_user_id")
#: Partition column of the day-partitioned parquet layout (``day=YYYY-MM-DD``).
DAY = "day"
#: Column prefix of the synthetic generator's true probabilities (truth files).
TRUE_PROB_PREFIX = "p_"
