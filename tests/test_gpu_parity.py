"""CPU vs GPU on the same data (``gpu`` marker: skipped without a GPU and RAPIDS).

Run on a GPU machine with ``python -m pytest -m gpu``.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from rapids_engage.features import TargetEncoder
from rapids_engage.pipeline import main

pytestmark = pytest.mark.gpu


def _frame(n=20_000, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "tweet_id": rng.integers(0, 2**62, n),
        "engaging_user_id": rng.integers(0, 500, n),
        "language": rng.integers(0, 7, n),
        "like": rng.integers(0, 2, n).astype("int8"),
        "reply": (rng.random(n) < 0.05).astype("int8"),
    })


def test_target_encoding_parity():
    import cudf

    train, test = _frame(seed=0), _frame(seed=1)
    cols = ["engaging_user_id", "language"]
    cpu = TargetEncoder(cols).fit_transform(train, ["like", "reply"])
    gpu = TargetEncoder(cols).fit_transform(cudf.from_pandas(train), ["like", "reply"]).to_pandas()
    for c in ("te_engaging_user_id__language_like", "te_engaging_user_id__language_reply"):
        np.testing.assert_allclose(gpu[c].to_numpy(), cpu[c].to_numpy(), atol=1e-6)
    enc_c, enc_g = TargetEncoder(cols).fit(train, ["like"]), TargetEncoder(cols).fit(cudf.from_pandas(train), ["like"])
    np.testing.assert_allclose(
        enc_g.transform(cudf.from_pandas(test)).to_pandas()["te_engaging_user_id__language_like"].to_numpy(),
        enc_c.transform(test)["te_engaging_user_id__language_like"].to_numpy(), atol=1e-6)


def test_pipeline_cpu_gpu_rce_agree(tmp_path):
    common = ["--rows", "200000", "--quiet", "--set", f"data.cache_dir={tmp_path / 'cache'}"]
    assert main(["--gpus", "0", "--out", str(tmp_path / "cpu"), *common]) == 0
    assert main(["--gpus", "1", "--out", str(tmp_path / "gpu"), *common]) == 0
    cpu = json.loads((tmp_path / "cpu" / "report.json").read_text())
    gpu = json.loads((tmp_path / "gpu" / "report.json").read_text())
    assert gpu["backend"] == "gpu" and cpu["backend"] == "cpu"
    assert cpu["rows"] == gpu["rows"]
    for t in ("like", "retweet", "reply", "quote"):
        assert abs(cpu["targets"][t]["rce"] - gpu["targets"][t]["rce"]) <= 0.5, t
