"""Row-wise features of an ingested table, from the column roles of its :class:`~rapids_engage.layout.Layout`.

* time: ``hour`` and ``weekday`` (UTC) of the event;
* text columns: ``<col>_chars``, ``<col>_words`` (separated by any run of whitespace, as Python's
  ``str.split()``) and the key ``<col>_first_word`` (lower-cased, e.g. ``show`` / ``ask`` for Hacker News titles);
* url columns: ``<col>_present`` and the key ``<col>_domain`` (host without ``www.``), of the url stripped of
  whitespace (a blank url is absent: 0 and an empty domain);
* list columns: ``<col>_len`` (number of ``list_sep``-separated items; an empty or blank item is none);
* numeric columns pass through as features.

Key columns (``*_first_word``, ``*_domain``) are strings for the target and
count encoders; name them in ``features.target_encoding.keys`` / ``counts``.
"""

from __future__ import annotations

from typing import Any

from ..layout import Layout


#: Suffixes of the columns computed from a text / url / list column: (features, key).
TEXT_SUFFIXES, TEXT_KEY = ("chars", "words"), "first_word"
URL_SUFFIXES, URL_KEY = ("present",), "domain"
LIST_SUFFIXES = ("len",)


def key_names(layout: Layout) -> list[str]:
    """The derived key columns :func:`derived_keys` adds."""
    return [f"{c}_{TEXT_KEY}" for c in layout.text] + [f"{c}_{URL_KEY}" for c in layout.url]


def feature_names(layout: Layout) -> list[str]:
    """The numeric feature columns :func:`content_features` adds or passes through."""
    names = ["hour", "weekday"]
    for c in layout.text:
        names += [f"{c}_{s}" for s in TEXT_SUFFIXES]
    names += [f"{c}_{s}" for c in layout.url for s in URL_SUFFIXES]
    names += [f"{c}_{s}" for c in layout.lists for s in LIST_SUFFIXES]
    return names + list(layout.numeric)


def computed_columns(layout: Layout) -> dict[str, str]:
    """Every column computed from a row of ``layout`` (features and keys, not the numeric pass-through)
    -> what it is, for messages."""
    out = {c: "a row-wise feature" for c in ("hour", "weekday")}
    for role, columns, suffixes in (("text", layout.text, (*TEXT_SUFFIXES, TEXT_KEY)), ("url", layout.url, (*URL_SUFFIXES, URL_KEY)),
                                    ("list", layout.lists, LIST_SUFFIXES)):
        out |= {f"{c}_{s}": f"a feature of {role} column {c!r}" for c in columns for s in suffixes}
    return out


#: What ``str.strip()`` strips on pandas (Python's whitespace), spelled out: libcudf's default strips
#: every character up to ' ' instead (control characters in, no-break spaces out).
WHITESPACE = "".join(chr(c) for c in range(0x3001) if chr(c).isspace())
#: A run of those characters: what separates the words of a text (as Python's ``str.split()``).
SPACES = f"[{WHITESPACE}]+"


#: What a regex pattern must escape to match a character literally, in Python's ``re`` and in libcudf alike
#: (libcudf's list; ``re.escape`` escapes more, e.g. a space, whose escape libcudf does not define).
REGEX_SPECIAL = "[\\^$.|?*+(){}"


def literal(text: str) -> str:
    """A regex pattern (Python and libcudf) that matches ``text`` literally."""
    return "".join(f"\\{ch}" if ch in REGEX_SPECIAL else ch for ch in text)


def count_items(s: Any, sep: str) -> Any:
    """Items of ``sep``-separated lists (``sep`` is literal text, not a pattern). An item empty after stripping
    whitespace is none: ``"a||b"``, ``"|a|"`` and ``"a| |b"`` hold 2, 1 and 2 items; an empty or blank list 0.
    A ``sep`` that overlaps itself (``"||"``) joins a trailing part of one to the item before: ``"b|||"`` holds 1."""
    blank, sep_ = f"[{WHITESPACE}]*", literal(sep)
    # a run of separators with blank items between and around them, each blank before its separator: a blank
    # after one ate the leading whitespace of the next (" |"), which ended the run. A separator of whitespace alone
    # (" ", RecSys tabs): a run of whitespace holding one (blank and separator alike, a repeat tried every split)
    gap = f"{blank}{sep_}{'' if not sep.strip(WHITESPACE) else f'(?:{blank}{sep_})*'}{blank}"
    s = s.fillna("")
    plain = _plain_count_items(s, sep)
    if plain is not None:
        return plain
    s = s.str.replace(f"^{gap}|{gap}$", "", regex=True).str.strip(WHITESPACE)  # none before or after them
    return ((s.str.count(gap) + 1) * (s.str.len() > 0).astype("int32")).astype("int32")  # each other run separates two items


def _plain_count_items(s: Any, sep: str) -> Any | None:
    """:func:`count_items` of lists (no nulls) that hold no blank item and no whitespace but a one-character ``sep``
    (RecSys tab lists, a table's words): their separators counted literally, as the length ``sep`` takes, without
    the regex count (a match per separator, most of the content features' time); None when a row is not such a list."""
    if len(sep) != 1:
        return None
    # other whitespace or a doubled separator: one regex scan of the text (two literal / regex scans took twice as long)
    odd = s.str.contains(f"[{WHITESPACE.replace(sep, '')}]|{literal(sep + sep)}", regex=True) | s.str.startswith(sep) | s.str.endswith(sep)
    if bool(odd.any()):
        return None
    length = s.str.len()
    seps = length - s.str.replace(sep, "", regex=False).str.len()
    return ((seps + 1) * (length > 0).astype("int32")).astype("int32")


def _url(s: Any) -> Any:
    """Urls stripped of whitespace (a blank url is none: empty)."""
    return s.fillna("").str.strip(WHITESPACE)


def _words(s: Any) -> Any:
    """Text with its words separated by one space: stripped, each run of whitespace (two spaces, a tab) one space."""
    return s.fillna("").str.strip(WHITESPACE).str.replace(SPACES, " ", regex=True)


def derived_keys(part: Any, layout: Layout) -> Any:
    """One partition (pandas or cudf) with the string key columns of :func:`key_names` added."""
    new = {}
    for c in layout.text:
        first = _words(part[c]).str.split(" ").str.get(0).fillna("")
        new[f"{c}_{TEXT_KEY}"] = first.str.lower().astype("str")  # a string column (split + get gives object)
    for c in layout.url:
        # scheme://[user[:password]@]host[:port]...: the host, not the user name of a URL with credentials
        host = _url(part[c]).str.extract(r"^[a-zA-Z][a-zA-Z0-9+.-]*://(?:[^/?#@]*@)?([^/:?#@]+)", expand=False)
        new[f"{c}_{URL_KEY}"] = host.fillna("").str.lower().str.replace(r"^www\.", "", regex=True)
    return part.assign(**new) if new else part


def content_features(part: Any, layout: Layout) -> Any:
    """One partition with the features of :func:`feature_names` added."""
    ts = part[layout.time]
    new = {
        "hour": ((ts // 3600) % 24).astype("int32"),
        "weekday": (((ts // 86400) + 3) % 7).astype("int32"),  # 0 = Monday
    }
    for c in layout.text:
        text = part[c].fillna("").str.strip(WHITESPACE)
        new[f"{c}_chars"] = text.str.len().astype("int32")
        new[f"{c}_words"] = count_items(_words(text), " ")
    for c in layout.url:
        new[f"{c}_present"] = (_url(part[c]).str.len() > 0).astype("int8")
    for c in layout.lists:
        new[f"{c}_len"] = count_items(part[c], layout.list_sep)
    return part.assign(**new)
