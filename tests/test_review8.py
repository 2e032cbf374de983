"""Defects found reviewing the encoders' parameter conventions (estimator_conventions.Param, e752cf4)."""

from __future__ import annotations

import pytest

from rapids_engage.features import CountEncoder, HistoryEncoder, TargetEncoder
from rapids_engage.features.sessions import SessionEncoder


@pytest.mark.parametrize("encoder, bad", [
    (HistoryEncoder("a", windows=(60, 120)), {"prefix": "p", "windows": (-1,)}),
    (HistoryEncoder("a"), {"label_delay": -5}),
    (SessionEncoder("a", gap=90), {"columns": "b", "gap": -1}),
], ids=["history_windows", "history_label_delay", "session_gap"])
def test_set_params_keeps_a_value_fit_will_refuse_and_repr_shows_it(encoder, bad):
    """scikit-learn's rule (set_params only stores; fit checks): a value refused by fit is kept as given."""
    before = encoder.get_params()
    encoder.set_params(**bad)
    assert encoder.get_params() == {**before, **bad}
    shown = repr(encoder)
    assert all(f"{k}={v!r}" in shown for k, v in bad.items() if k != "columns"), shown
    with pytest.raises(ValueError, match="must be"):
        encoder.check_params()


def test_repr_shows_a_value_that_set_params_accepted_and_fit_will_refuse():
    enc = TargetEncoder("a").set_params(smooth="x")
    assert repr(enc) == "TargetEncoder(columns=['a'], smooth='x')"
    assert repr(CountEncoder("a").set_params(columns=5)) == "CountEncoder(columns=5)"
    assert repr(HistoryEncoder("a", windows=[86400, 604800], row_key=("t",))) == "HistoryEncoder(columns=['a'], row_key=['t'])"
