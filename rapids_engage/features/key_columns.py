"""The columns a feature key may name: a layout's input columns, the keys derived from a row
(``first_hashtag``, ``<url>_domain``, ...) and the row-wise content features (``hour``, ...), and computing them."""

from __future__ import annotations

from functools import partial
from typing import Any

from ..layout import Layout
from . import content, table_content
from .frames import as_dask, is_dask


def row_features(layout: Layout) -> tuple[Any, Any, list[str]]:
    """(derived-keys function, content-features function, content feature names) of a layout's rows."""
    if layout.kind == "recsys":
        return content.derived_keys, content.content_features, content.feature_names()
    return (
        partial(table_content.derived_keys, layout=layout),
        partial(table_content.content_features, layout=layout),
        table_content.feature_names(layout),
    )


def key_columns(layout: Layout) -> list[str]:
    """The columns a feature key may name for data of ``layout``: its input columns, the derived keys
    (``first_hashtag``, ``<text>_first_word``, ``<url>_domain``, ...) and the row-wise content
    features (``hour``, ...)."""
    return list(dict.fromkeys([*layout.input_columns(), *derived_key_names(layout), *row_features(layout)[2]]))


def derived_key_names(layout: Layout) -> list[str]:
    """The key columns computed from a row of ``layout`` (``first_hashtag``, ``<text>_first_word``, ...)."""
    return list(content.DERIVED_KEYS) if layout.kind == "recsys" else table_content.key_names(layout)


def row_columns(frame: Any, layout: Layout, content: bool) -> Any:
    """``frame`` (dask, or in memory: pandas / cudf) with the layout's derived key columns (e.g. ``first_hashtag``,
    ``url_domain``) and, with ``content``, its row-wise content features (``hour``, ...)."""
    derived, features, _ = row_features(layout)
    for fn in (derived, features) if content else (derived,):
        frame = _rowwise(frame, fn) if is_dask(frame) else fn(frame)
    return frame


def with_key_columns(frame: Any, layout: Layout, keys: list[list[str]]) -> Any:
    """``frame`` with every column ``keys`` may name: the derived keys, and the content features when a key
    names one (``hour``)."""
    names = row_features(layout)[2]
    return row_columns(frame, layout, any(c in names for key in keys for c in key))


def _rowwise(frame: Any, fn: Any) -> Any:
    frame = as_dask(frame)
    return frame.map_partitions(fn, meta=fn(frame._meta))
