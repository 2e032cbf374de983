"""Count encodings and content features against direct pandas computations."""

from __future__ import annotations

import dask.dataframe as dd
import numpy as np
import pandas as pd
from hypothesis import example, given, settings
from hypothesis import strategies as st

from rapids_engage.features import CountEncoder
from rapids_engage.features.counts import with_day
from rapids_engage.features.content import content_features, derived_keys, feature_names


def events(n: int = 400, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "engaging_user_id": rng.integers(0, 30, n),
            "language": rng.choice(["x", "y"], n),
            "tweet_timestamp": 1612396800 + rng.integers(0, 5 * 86400, n),
        }
    )


def test_counts_over_window_and_day():
    train, new = events(400, 1), events(100, 2)
    enc = CountEncoder(["engaging_user_id", "language"]).fit(dd.from_pandas(train, npartitions=3))
    out = enc.transform(dd.from_pandas(new, npartitions=2)).compute()
    full = train.groupby(["engaging_user_id", "language"]).size()
    want = [full.get((u, lang), 0) for u, lang in zip(new["engaging_user_id"], new["language"])]
    np.testing.assert_array_equal(out["cnt_engaging_user_id__language"].to_numpy(), want)
    day = new["tweet_timestamp"] // 86400
    daily = new.assign(d=day).groupby(["engaging_user_id", "language", "d"])["d"].transform("size")
    np.testing.assert_array_equal(out["cnt_day_engaging_user_id__language"].to_numpy(), daily.to_numpy())
    assert out["tweet_timestamp"].tolist() == new["tweet_timestamp"].tolist()


def test_daily_counts_of_a_batch_equal_the_joined_daily_table():
    """The in-memory per-day count (serving) equals the dask path's joined table, null keys counting 0."""
    new = events(200, 3).astype({"language": "object"})
    new.loc[::7, "language"] = None
    enc = CountEncoder(["engaging_user_id", "language"]).fit(dd.from_pandas(events(50, 4), npartitions=1))
    joined = enc.transform(dd.from_pandas(new, npartitions=3)).compute()["cnt_day_engaging_user_id__language"]
    direct = enc.daily_counts(with_day(new))
    assert direct.dtype == "int64" and (direct[new["language"].isna()] == 0).all()
    np.testing.assert_array_equal(direct.to_numpy(), joined.to_numpy())


def test_content_features():
    part = pd.DataFrame(
        {
            "text_tokens": ["101\t137\t137\t2\t1137\t137\t102", "", "101\t137\t102"],
            "hashtags": ["a" * 32 + "\t" + "b" * 32, "", "c" * 32],
            "present_media": ["Photo\tPhoto\tVideo", "", "GIF"],
            "present_links": ["", "l", ""],
            "present_domains": ["", "d" * 32, ""],
            "tweet_type": ["TopLevel", "Reply", "Quote"],
            "tweet_timestamp": [1612396800, 1612396800 + 86400 + 7200, 1612396800 + 3 * 86400],
            "engaged_with_user_follower_count": [10, 0, 5],
            "engaged_with_user_following_count": [4, 0, 0],
            "engaging_user_follower_count": [1, 2, 3],
            "engaging_user_following_count": [1, 1, 1],
            "engaged_with_user_account_creation": [1612396800 - 10 * 86400] * 3,
            "engaging_user_account_creation": [1612396800] * 3,
            "engaged_with_user_is_verified": [True, False, False],
            "engaging_user_is_verified": [False, False, True],
            "engagee_follows_engager": [True, True, False],
        }
    )
    out = content_features(part)
    assert out["n_tokens"].tolist() == [7, 0, 3]
    assert out["n_mentions"].tolist() == [3, 0, 1]  # "@" tokens, adjacent ones included; 1137 is another token
    assert out["n_hashtags"].tolist() == [2, 0, 1]
    assert out["n_photo"].tolist() == [2, 0, 0] and out["n_video"].tolist() == [1, 0, 0] and out["n_gif"].tolist() == [0, 0, 1]
    assert out["n_links"].tolist() == [0, 1, 0] and out["n_domains"].tolist() == [0, 1, 0]
    assert out["hour"].tolist() == [0, 2, 0]
    assert out["weekday"].tolist() == [3, 4, 6]  # 2021-02-04 was a Thursday
    assert out["tweet_type_code"].tolist() == [0, 3, 2]
    assert out["creator_ff_ratio"].tolist() == [2.0, 0.0, 5.0]
    assert out["creator_account_age_days"].tolist() == [10, 11, 13] and out["user_account_age_days"].tolist() == [0, 1, 3]
    assert out["user_ff_ratio"].tolist() == [0.5, 1.0, 1.5] and out["user_creator_follower_ratio"].tolist() == [1 / 11, 2.0, 0.5]
    keys = derived_keys(part)["first_hashtag"].tolist()
    assert keys[1] == 0  # no hashtag
    assert keys[0] == int.from_bytes(bytes.fromhex("a" * 16), "big", signed=True)
    assert keys[2] == int.from_bytes(bytes.fromhex("c" * 16), "big", signed=True)
    assert out["engagee_follows_engager"].dtype == np.int8
    assert set(feature_names()) <= set(out.columns)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(st.sampled_from(["137", "1137", "1370", "13", "7", "", " 137", "137 ", "137\n", "101"]), max_size=8),
                max_size=20))
def test_mentions_are_the_items_equal_to_the_token_id(lists):
    """n_mentions counts the tab-separated items that are exactly 137 (adjacent ones each; 1137, 1370 and 137 with
    whitespace are other items), as a split of each list would."""
    from rapids_engage.features.content import _token_counts

    tokens = pd.Series(["\t".join(items) for items in lists], dtype="str")
    got = _token_counts(tokens, {"n": 137})["n"]
    assert got.dtype == np.int32 and got.tolist() == [items.count("137") for items in lists]


def test_content_features_of_null_lists_unknown_types_and_accounts_created_later():
    """A null list is an empty one; an unknown tweet type is code 0 (as the first type); an account created
    after the tweet has a negative age, floored to whole days (a second later: -1, not 0)."""
    t = 1612396800
    part = pd.DataFrame({"text_tokens": ["101\t137\t102", None], "hashtags": ["a" * 32, None], "present_media": ["Photo", None],
                         "present_links": ["l", None], "present_domains": ["d" * 32, None], "tweet_type": ["Quote", "Poll"],
                         "tweet_timestamp": [t, t], "engaging_user_account_creation": [t + 1, t + 86400],
                         **{c: [1, 1] for c in ("engaged_with_user_follower_count", "engaged_with_user_following_count",
                                                "engaging_user_follower_count", "engaging_user_following_count")},
                         "engaged_with_user_account_creation": [t, t], "engaged_with_user_is_verified": [True, False],
                         "engaging_user_is_verified": [False, True], "engagee_follows_engager": [True, False]}).astype(
                             {c: "str" for c in ("text_tokens", "hashtags", "present_media", "present_links", "present_domains")})
    out = content_features(part)
    counts = ["n_tokens", "n_mentions", "n_hashtags", "n_photo", "n_links", "n_domains"]
    assert out.loc[0, counts].tolist() == [3, 1, 1, 1, 1, 1] and out.loc[1, counts].tolist() == [0] * 6
    assert derived_keys(part)["first_hashtag"].tolist()[1] == 0
    assert out["tweet_type_code"].tolist() == [2, 0]
    assert out["user_account_age_days"].tolist() == [-1, -1]
    for dtype in ("str", "string", "object", "category"):  # a null type (NaN, pd.NA) is 0 too
        assert content_features(part.assign(tweet_type=pd.Series([None, "Reply"], dtype=dtype)))["tweet_type_code"].tolist() == [0, 3]


def test_table_list_lengths_take_the_separator_literally_and_strip_what_pandas_strips():
    """``list_sep`` is text, not a regex ("|" used to count 6 items in "a|b|c"); the explicit
    whitespace set strips what pandas' ``str.strip()`` does (libcudf's default differs)."""
    from rapids_engage.features.table_content import WHITESPACE, count_items

    s = pd.Series(["a|b|c", "", None, " a ", "a||b", "x.y"], dtype="str")
    assert count_items(s, "|").tolist() == [3, 0, 0, 1, 2, 1]
    assert count_items(s, ".").tolist() == [1, 0, 0, 1, 1, 2]
    assert count_items(pd.Series(["a, b, c"], dtype="str"), ", ").tolist() == [3]
    every = pd.Series([chr(c) + "x" + chr(c) for c in range(0x3100) if not 0xD800 <= c <= 0xDFFF], dtype="str")
    pd.testing.assert_series_equal(every.str.strip(WHITESPACE), every.str.strip())


def test_table_computed_columns_are_the_columns_the_row_wise_features_add():
    from rapids_engage.config import TableConfig, TargetSpec
    from rapids_engage.features.table_content import computed_columns, content_features, derived_keys, feature_names, key_names
    from rapids_engage.layout import table_layout

    layout = table_layout(TableConfig(format="csv", time="t", row_id=["id"], targets={"y": TargetSpec("y", "binary")},
                                      text=["title"], url=["link"], lists=["tags"], numeric=["score"]))
    part = pd.DataFrame({"event_time": [1_600_000_000], "title": ["Show HN: x"], "link": ["https://www.a.com/b"],
                         "tags": ["a b"], "score": [1.0]})
    added = set(content_features(derived_keys(part, layout), layout).columns) - set(part.columns)
    assert added == set(computed_columns(layout)) == set(feature_names(layout)) - {"score"} | set(key_names(layout))


def test_the_readme_catalog_names_every_content_feature():
    """The feature catalog's content row names the columns a RecSys run produces, as they are named."""
    import re
    from pathlib import Path

    readme = (Path(__file__).parents[1] / "README.md").read_text()
    row = next(line for line in readme.splitlines() if line.startswith("| content and profile |"))
    assert set(feature_names()) <= set(re.findall(r"`([a-z_]+)`", row))


def test_unseen_and_null_keys_count_zero_and_seen_keys_their_training_rows():
    """cnt_<key> of a new row: its key's training rows, 0 for a key not seen in training (or with a null)."""
    train = pd.DataFrame({"engaging_user_id": [1, 1, 1, 2, 3, 3], "language": ["x", "x", "y", "x", "y", None],
                          "tweet_timestamp": 1612396800 + np.arange(6)})
    new = pd.DataFrame({"engaging_user_id": [1, 1, 2, 9, 3, 3], "language": ["x", "y", "y", "x", "y", None],
                        "tweet_timestamp": 1612396800 + 86400 * np.arange(6)})
    enc = CountEncoder(["engaging_user_id", "language"]).fit(dd.from_pandas(train, npartitions=2))
    out = enc.transform(new)
    assert out["cnt_engaging_user_id__language"].tolist() == [2, 1, 0, 0, 1, 0]
    assert out["cnt_day_engaging_user_id__language"].tolist() == [1, 1, 1, 1, 1, 0]  # one row a day; a null key: 0


LIST_TEXT = st.text(alphabet=st.sampled_from("ab|., \t\xa0*(\\"), max_size=14)


#: Separators, and lists of them: texts of LIST_TEXT's characters and whole separators (runs of them, blank items).
SEP_LISTS = st.sampled_from(["|", " ", "\t", ".", ", ", "||", "*(", "\\", " |", "\t*"]).flatmap(
    lambda sep: st.tuples(st.lists(st.one_of(st.none(), LIST_TEXT, st.lists(st.sampled_from([*"ab \t\xa0", sep]), max_size=10).map("".join)),
                                   min_size=1, max_size=6), st.just(sep)))


@settings(max_examples=300, deadline=None)
@given(SEP_LISTS, st.sampled_from(["str", "object"]))
@example((["a | | |b", "a | |  | b | |"], " |"), "str")
@example((["h\t*\t*\t*\t*i"], "\t*"), "object")
def test_list_lengths_count_the_items_that_are_not_blank(case, dtype):
    """``<list>_len`` is the number of ``sep``-separated items that hold more than whitespace: "a||b" with "|" held 3
    items, "|a|" 3, "a  b" (the default separator, a space) 3; the empty items between separators, or before a
    leading and after a trailing one, are none. A separator that starts with whitespace (" |") ended a run of them
    at its second one: "a | | |b" held 3 items. Object strings are matched by Python's re, arrow ones by RE2."""
    from rapids_engage.features.table_content import count_items

    lists, sep = case
    got = count_items(pd.Series(lists, dtype=dtype), sep).tolist()
    assert got == [sum(1 for item in (t or "").split(sep) if item.strip()) for t in lists]


#: Lists of plain items (no whitespace, no separator) joined by one single-character separator, and that separator.
PLAIN_LISTS = st.sampled_from(["\t", " ", "|", "."]).flatmap(lambda sep: st.tuples(st.lists(
    st.lists(st.text(alphabet=st.sampled_from([c for c in "ab1|.*(\\" if c != sep]), min_size=1, max_size=4), max_size=5).map(sep.join),
    min_size=1, max_size=6), st.just(sep)))


@settings(max_examples=200, deadline=None)
@given(PLAIN_LISTS, st.sampled_from(["str", "object"]), st.sampled_from(["", None, "x", "y z", "\tx", "x||y", "x\xa0y"]))
def test_plain_lists_are_counted_without_a_regex_and_as_the_rule_says(case, dtype, odd):
    """Lists of plain items joined by one single-character separator (RecSys tab lists; a table's words, ``_words``
    joined them by a space) are counted by the separators' share of the length: the regex count, a match per
    separator, was most of the content features' time (a 150,000-row RecSys partition's n_tokens: 580 ms of CPU,
    now 195). Any other row in the column (a blank item, other whitespace, a doubled separator) takes the rule's
    regex path for the column: the counts are the rule's either way."""
    from rapids_engage.features.table_content import _plain_count_items, count_items

    lists, sep = case
    expect = lambda rows: [sum(1 for item in (t or "").split(sep) if item.strip()) for t in rows]  # noqa: E731
    plain = pd.Series(lists, dtype=dtype)
    assert _plain_count_items(plain, sep).tolist() == expect(lists)
    mixed = pd.Series([*lists, odd], dtype=dtype)
    assert count_items(mixed, sep).tolist() == expect([*lists, odd])
    if odd and (odd.startswith(sep) or sep + sep in odd or any(c.isspace() and c != sep for c in odd)):
        assert _plain_count_items(mixed, sep) is None


def test_list_counts_of_a_long_run_of_whitespace_separators_end():
    """With a separator of whitespace (" ", the default; RecSys tabs) the run pattern was (blank sep blank)+, whose
    blank also matches the separator: Python's re (object strings: pandas 2's, a frame of objects) tried every split
    of a run, 2**n steps (26 spaces: 16 s). A run of 60 must be counted at once (a hang guard, not a speed target)."""
    import subprocess
    import sys

    code = ("import pandas as pd; from rapids_engage.features.table_content import count_items; "
            "s = pd.Series(['a' + ' ' * 60 + 'b', '\\t' * 60 + 'h', 'h' + ' \\t' * 30 + '.'], dtype=object); "
            "print(count_items(s, ' ').tolist(), count_items(s, '\\t').tolist())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["[2,", "1,", "2]", "[1,", "1,", "2]"]


def test_recsys_list_counts_and_first_ids_skip_empty_items():
    """A stray, leading or trailing tab in a RecSys list is no item: "h\t" held 2 hashtags, "\th" 2 and a first
    hashtag of 0 (none: the slice took the tab), "h\t\th" 3."""
    h, d = "a" * 32, "d" * 32
    part = pd.DataFrame({"text_tokens": ["101\t\t102\t", "\t101"], "hashtags": [h + "\t", "\t" + h + "\t\t" + h],
                         "present_media": ["Photo\t", ""], "present_links": ["\t", "l\t\tm"], "present_domains": ["\t" + d, ""],
                         "tweet_type": ["Quote", "Reply"], "tweet_timestamp": [1612396800] * 2,
                         **{c: [1, 1] for c in ("engaged_with_user_follower_count", "engaged_with_user_following_count",
                                                "engaging_user_follower_count", "engaging_user_following_count",
                                                "engaged_with_user_account_creation", "engaging_user_account_creation")},
                         **{c: [True, False] for c in ("engaged_with_user_is_verified", "engaging_user_is_verified",
                                                       "engagee_follows_engager")}})
    out = content_features(part)
    assert out["n_tokens"].tolist() == [2, 1] and out["n_hashtags"].tolist() == [1, 2]
    assert out["n_links"].tolist() == [0, 2] and out["n_domains"].tolist() == [1, 0] and out["n_photo"].tolist() == [1, 0]
    keys = derived_keys(part)
    assert keys["first_hashtag"].tolist() == [int.from_bytes(bytes.fromhex(h[:16]), "big", signed=True)] * 2
    assert keys["first_domain"].tolist() == [int.from_bytes(bytes.fromhex(d[:16]), "big", signed=True), 0]


WORD_TEXT = st.text(alphabet=st.sampled_from("aBé" + " \t\n\xa0\u3000"), max_size=12)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.none(), WORD_TEXT), min_size=1, max_size=8))
def test_table_words_and_first_word_split_on_any_run_of_whitespace(texts):
    """``<text>_words`` and ``<text>_first_word`` are Python's ``str.split()``: a run of whitespace is one separator.
    They split on single spaces: 1,027 Hacker News titles with a doubled space ('SQLAR  the SQLite Archiver',
    a dash the export dropped) counted a word more, and 'Ask\\tHN' had the first word 'ask\\thn'."""
    from rapids_engage.config import TableConfig, TargetSpec
    from rapids_engage.features.table_content import content_features, derived_keys
    from rapids_engage.layout import table_layout

    layout = table_layout(TableConfig(format="csv", time="t", row_id=["id"], targets={"y": TargetSpec("y", "binary")}, text=["title"]))
    part = pd.DataFrame({"event_time": 1_600_000_000, "title": pd.array(texts, dtype="str")})
    out = content_features(derived_keys(part, layout), layout)
    words = [(t or "").split() for t in texts]
    assert out["title_words"].tolist() == [len(w) for w in words]
    assert out["title_first_word"].tolist() == [w[0].lower() if w else "" for w in words]
    assert out["title_chars"].tolist() == [len((t or "").strip()) for t in texts]


def test_table_url_domain_is_the_host_of_a_url_with_credentials():
    """``<url>_domain`` of ``scheme://user:pass@host/...`` is the host: it was ``user:pass@host``
    (a key of its own per user name); an ``@`` in the path (medium.com/@user) stays out of it."""
    from rapids_engage.config import TableConfig, TargetSpec
    from rapids_engage.features.table_content import derived_keys
    from rapids_engage.layout import table_layout

    layout = table_layout(TableConfig(format="csv", time="t", row_id=["id"], targets={"y": TargetSpec("y", "binary")}, url=["url"]))
    urls = ["http://user@B.com:80/", "https://u:p@www.a.com/x", "https://medium.com/@someone/post", "ftp://c.org?a@b",
            "https://www.a.com#x@y", "", None, "a.com/x"]
    got = derived_keys(pd.DataFrame({"url": pd.array(urls, dtype="str")}), layout)["url_domain"].tolist()
    assert got == ["b.com", "a.com", "medium.com", "c.org", "a.com", "", "", ""]


def test_table_url_present_only_for_a_url():
    """``<url>_present``: 0 for a null, empty or blank url (rows to serve may hold nulls; a blank one was present,
    with an empty domain), 1 for a url; the domain is the stripped url's."""
    from rapids_engage.config import TableConfig, TargetSpec
    from rapids_engage.features.table_content import content_features, derived_keys
    from rapids_engage.layout import table_layout

    layout = table_layout(TableConfig(format="csv", time="t", row_id=["id"], targets={"y": TargetSpec("y", "binary")}, url=["url"]))
    part = pd.DataFrame({"event_time": 1_600_000_000, "url": pd.array(["https://a.com", "", None, " ", "\t\xa0",
                                                                      " https://b.com/x\n"], dtype="str")})
    out = content_features(derived_keys(part, layout), layout)
    assert out["url_present"].tolist() == [1, 0, 0, 0, 0, 1]
    assert out["url_domain"].tolist() == ["a.com", "", "", "", "", "b.com"]


def test_without_per_day_counts_no_time_column_is_needed():
    """per_day=False adds cnt_<key> alone: a frame without the time column is encoded, not a KeyError."""
    train, new = events(200, 5).drop(columns="tweet_timestamp"), events(50, 6).drop(columns="tweet_timestamp")
    out = CountEncoder("engaging_user_id", per_day=False).fit(train).transform(new)
    assert list(out.columns) == [*new.columns, "cnt_engaging_user_id"]
    full = train.groupby("engaging_user_id").size()
    np.testing.assert_array_equal(out["cnt_engaging_user_id"].to_numpy(), [full.get(u, 0) for u in new["engaging_user_id"]])


def test_keys_of_another_kind_than_fitted_are_refused():
    """Counts fitted on text keys, asked for number keys: every row counted 0, silently."""
    import pytest

    enc = CountEncoder("language").fit(events(50, 7).astype({"language": "category"}))
    with pytest.raises(TypeError, match=r"the key column 'language' holds numbers \(int64\) but held text"):
        enc.transform(events(20, 8).assign(language=1))


def test_missing_columns_and_an_unfitted_save_are_one_line_errors():
    import pytest

    from rapids_engage.features import NotFittedError

    df = events(30, 9)
    with pytest.raises(ValueError, match=r"CountEncoder\(nope\): columns \['nope'\] are not in the frame"):
        CountEncoder("nope").fit(df)
    enc = CountEncoder("language").fit(df)
    with pytest.raises(ValueError, match=r"CountEncoder\(language\): columns \['language'\] are not in the frame"):
        enc.transform(df.drop(columns="language"))
    with pytest.raises(ValueError, match=r"columns \['tweet_timestamp'\] are not in the frame"):  # per-day counts need the time
        enc.transform(df.drop(columns="tweet_timestamp"))
    with pytest.raises(NotFittedError, match="not fitted"):
        CountEncoder("language").save("unused")


def test_transform_of_a_frame_that_already_holds_the_counts():
    df = events(60, 10)
    enc = CountEncoder("language").fit(df)
    moved = enc.transform(df).pipe(lambda d: d[["cnt_language", *df.columns, "cnt_day_language"]])  # not last
    again = enc.transform(moved)
    assert list(again.columns) == [*df.columns, "cnt_language", "cnt_day_language"]
    pd.testing.assert_frame_equal(again, enc.transform(df))


def test_a_null_profile_value_or_a_negative_count_in_the_training_rows_is_named(tmp_path):
    """A null account-creation time in training rows (a nullable Int64 column of parquet input) was
    ``error: cannot convert NA to integer`` from the content features; it is named as at serving. A following
    count of -1 made creator_ff_ratio infinite, and training ended in XGBoost's 'Input data contains `inf`'
    and a C++ stack trace; it is named too, in training and serving."""
    import dask
    import pytest

    from rapids_engage.config import load_config
    from rapids_engage.data import DataError, read_events
    from rapids_engage.features import FeatureBuilder, add_labels
    from rapids_engage.synthetic import SyntheticSpec, generate

    generate(tmp_path, SyntheticSpec(rows=600, days=2, seed=3))
    rows = add_labels(read_events(tmp_path / "data"), ["like"]).compute().reset_index(drop=True)
    null = rows.astype({"engaging_user_account_creation": "Int64"})
    null.loc[7, "engaging_user_account_creation"] = None
    negative = rows.copy()
    negative.loc[7, "engaged_with_user_following_count"] = -1
    builder = FeatureBuilder(load_config().features, ["like"])
    with dask.config.set(scheduler="sync"):
        with pytest.raises(DataError, match="column 'engaging_user_account_creation' has 1 null"):
            builder.fit_transform(null).compute()
        with pytest.raises(DataError, match=r"column 'engaged_with_user_following_count' holds -1, not a count \(>= 0\)"):
            builder.fit_transform(negative).compute()
        builder.fit_transform(rows.head(400)).compute()
        with pytest.raises(DataError, match="column 'engaged_with_user_following_count' holds -1"):
            builder.transform_frame(negative.tail(50).assign(engaged_with_user_following_count=-1))


def test_the_first_null_is_named_by_its_index_label():
    """An int index label was written as its numpy repr: 'the first at index np.int64(11)'."""
    import pytest

    from rapids_engage.data import DataError
    from rapids_engage.features.value_checks import check_values

    frame = pd.DataFrame({"tweet_timestamp": pd.array([1_600_000_000, None], dtype="Int64")}, index=[10, 11])
    with pytest.raises(DataError, match=r"the first at index 11: "):
        check_values(frame, "tweet_timestamp")


def test_a_column_named_like_the_day_of_the_per_day_counts_comes_back():
    """The per-day counts' day column `_day` overwrote X's own `_day` and then dropped it: the column was gone."""
    import pytest

    df = events(80, 11)
    mine = df.assign(_day=np.arange(80)[::-1].astype(str))
    for frame in (mine, dd.from_pandas(mine, npartitions=2)):
        out = CountEncoder("language").fit(df).transform(frame)
        out = out.compute() if hasattr(out, "compute") else out
        assert list(out.columns) == [*mine.columns, "cnt_language", "cnt_day_language"]
        assert out["_day"].tolist() == mine["_day"].tolist()
        want = CountEncoder("language").fit(df).transform(df)
        np.testing.assert_array_equal(out[["cnt_language", "cnt_day_language"]], want[["cnt_language", "cnt_day_language"]])
    with pytest.raises(ValueError, match=r"CountEncoder\(_day\): the key column name '_day' is reserved"):
        CountEncoder("_day").fit(mine).transform(mine)  # was 'Grouper for '_day' not 1-dimensional'
    assert CountEncoder("_day", per_day=False).fit(mine).transform(mine)["cnt__day"].eq(1).all()
