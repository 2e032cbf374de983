"""Content and profile features computed row by row (no fitted state).

Token, hashtag, link, domain and media counts from the tab-separated list
columns (an empty item, a stray or trailing tab, is none); mentions (``@`` tokens) in the text; tweet hour and weekday;
follower/following ratios; account ages; verified and follow flags; the tweet
type as a small integer code. The key
columns ``first_hashtag`` and ``first_domain`` for the encoders come from
:func:`derived_keys`.
"""

from __future__ import annotations

from typing import Any

from ..schema import TWEET_TYPES
from .table_content import WHITESPACE, count_items

LIST_COUNTS = {
    "n_tokens": "text_tokens",
    "n_hashtags": "hashtags",
    "n_links": "present_links",
    "n_domains": "present_domains",
}
MEDIA_COUNTS = {"n_photo": "Photo", "n_video": "Video", "n_gif": "GIF"}
# token ids counted in ``text_tokens`` (RecSys 2021 text is BERT multilingual cased token ids:
# 106 "!" ... 137 "@", in ASCII order after the special tokens)
TOKEN_COUNTS = {"n_mentions": 137}
RAW_NUMERIC = (
    "engaged_with_user_follower_count",
    "engaged_with_user_following_count",
    "engaging_user_follower_count",
    "engaging_user_following_count",
)
FLAGS = ("engaged_with_user_is_verified", "engaging_user_is_verified", "engagee_follows_engager")
#: Columns whose null has no meaning for the features (an account age, a flag): an error at serving.
NON_NULL = ("engaged_with_user_account_creation", "engaging_user_account_creation", *FLAGS)
DERIVED = (
    "hour",
    "weekday",
    "tweet_type_code",
    "creator_ff_ratio",
    "user_ff_ratio",
    "user_creator_follower_ratio",
    "creator_account_age_days",
    "user_account_age_days",
)


def feature_names() -> list[str]:
    """The columns :func:`content_features` adds or passes through as features."""
    return [*LIST_COUNTS, *TOKEN_COUNTS, *MEDIA_COUNTS, *DERIVED, *RAW_NUMERIC, *FLAGS]


def _token_counts(tokens: Any, ids: dict[str, int]) -> dict[str, Any]:
    """name -> occurrences of a token id in tab-separated token lists, adjacent equal tokens each: the items that
    start with it less those that go on past it (no copy of the lists with every token wrapped in tabs of its own)."""
    items = "\t" + tokens  # every item after a tab
    return {name: (items.str.count(f"\t{token}") - items.str.count(f"\t{token}[^\t]")).astype("int32")
            for name, token in ids.items()}


def _first_id(lists: Any) -> Any:
    """The first 32-hex-char id of each tab-separated list as an int64 key (0 for an empty list); leading empty
    items (a stray tab) are none."""
    from ..backend import series_like, values
    from ..ingest.ids import parse_hex_ids

    keys, _ = parse_hex_ids(lists.fillna("").str.lstrip(WHITESPACE).str.slice(0, 32))
    return series_like(lists, values(keys))  # an array: a Series would be realigned, which cudf refuses on repeated labels


def _plain_values(s: Any) -> Any:
    """``s`` with a categorical column as its categories' values (nulls stay null): cudf compares a categorical column
    with a value by looking it up among its categories and raises (ValueError, not found) for one that is not there,
    e.g. a partition without quotes; pandas gives False."""
    return s.astype(s.cat.categories.dtype) if getattr(s.dtype, "name", None) == "category" else s


#: The key columns :func:`derived_keys` adds.
DERIVED_KEYS = ("first_hashtag", "first_domain")


def derived_keys(part: Any) -> Any:
    """The int64 key columns ``first_hashtag`` and ``first_domain`` (0 when the tweet has none)."""
    return part.assign(first_hashtag=_first_id(part["hashtags"]), first_domain=_first_id(part["present_domains"]))


def content_features(part: Any) -> Any:
    """One partition (pandas or cudf) with the content/profile features added."""
    ts = part["tweet_timestamp"]
    lists = {col: part[col].fillna("") for col in (*LIST_COUNTS.values(), "present_media")}  # a null list: empty
    new = {name: count_items(lists[col], "\t") for name, col in LIST_COUNTS.items()}  # a stray tab: no item
    new.update(_token_counts(lists["text_tokens"], TOKEN_COUNTS))
    new.update({name: lists["present_media"].str.count(kind).astype("int32") for name, kind in MEDIA_COUNTS.items()})
    new["hour"] = ((ts // 3600) % 24).astype("int32")
    new["weekday"] = (((ts // 86400) + 3) % 7).astype("int32")  # 0 = Monday (1970-01-01 was a Thursday)
    # an unknown type is 0, as the first; compared type by type (a map of the strings ran in Python, row by row)
    types = _plain_values(part["tweet_type"])
    is_kind = {i: (types == kind).fillna(False).astype("int32") for i, kind in enumerate(TWEET_TYPES) if i}
    new["tweet_type_code"] = sum(flag * i for i, flag in is_kind.items()).astype("int32")
    cf, cg = part["engaged_with_user_follower_count"], part["engaged_with_user_following_count"]
    uf, ug = part["engaging_user_follower_count"], part["engaging_user_following_count"]
    new["creator_ff_ratio"] = cf / (cg + 1.0)
    new["user_ff_ratio"] = uf / (ug + 1.0)
    new["user_creator_follower_ratio"] = uf / (cf + 1.0)
    new["creator_account_age_days"] = ((ts - part["engaged_with_user_account_creation"]) // 86400).astype("int32")
    new["user_account_age_days"] = ((ts - part["engaging_user_account_creation"]) // 86400).astype("int32")
    out = part.assign(**new)
    return out.astype({flag: "int8" for flag in FLAGS})
