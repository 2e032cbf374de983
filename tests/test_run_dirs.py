"""run_dirs' checks of a run's output directories, on small directories (no run)."""

from __future__ import annotations

import dataclasses
import json
import re

import pytest

from rapids_engage.config import ConfigError, load_config
from rapids_engage.layout import RECSYS
from rapids_engage.provenance import config_data
from rapids_engage.run_dirs import check_features_out, check_run_outputs, foreign_files


def test_foreign_files_names_the_first_three_in_order(tmp_path):
    """Sorted, three named then '...' (for four as for more); a directory named like a model is no model."""
    models = tmp_path / "models"
    models.mkdir()
    for name in ("e.pkl", "d.pkl", "c.pkl", "b.pkl"):
        (models / name).write_text("mine")
    (models / "like.json").write_text("{}")
    said = foreign_files(models, lambda p: p.suffix == ".json", "a run")
    assert said == (f"{models} holds files no run wrote (b.pkl, c.pkl, d.pkl, ...), and a run replaces it whole: "
                    "choose another --out or move them")
    for name in ("e.pkl", "d.pkl", "c.pkl", "b.pkl"):
        (models / name).unlink()
    cfg = load_config(None, ["out=" + str(tmp_path)])
    check_run_outputs(cfg, tmp_path)
    (models / "notes.json").mkdir()  # the user's directory: a run's models/ holds files only
    with pytest.raises(ConfigError, match=re.escape(f"{models} holds files no run wrote (notes.json)")):
        check_run_outputs(cfg, tmp_path)


@pytest.fixture
def run(tmp_path):
    cfg = load_config(None, ["out=" + str(tmp_path)])
    return cfg, tmp_path, config_data(cfg)


def _report(out, data):
    (out / "report.json").write_text(data if isinstance(data, str) else json.dumps(data))


def test_features_out_into_a_run_names_the_first_setting_that_differs(run):
    cfg, out, ours = run
    check_features_out(cfg, out)  # no run there
    _report(out, {"config": ours})
    check_features_out(cfg, out)  # the run's own config
    theirs = json.loads(json.dumps(ours))
    theirs["data"]["source"] = "table"
    _report(out, {"config": theirs})
    with pytest.raises(ConfigError, match=re.escape("of another config (data.source: synthetic here, table there)")):
        check_features_out(cfg, out)
    theirs = json.loads(json.dumps(ours))
    theirs["train"]["newer_setting"] = 1  # a key only there: another release's config
    _report(out, {"config": theirs})
    with pytest.raises(ConfigError, match=re.escape("of another config (train.newer_setting: (none) here, 1 there)")):
        check_features_out(cfg, out)


def test_features_out_into_a_run_compares_label_time_auto_resolved_for_the_run_s_layout(run):
    """auto matched whatever label time the run recorded: auto into a RecSys run (history keys set) that chose
    ``event`` passed, and features replaced its config.yaml with one saying ``engagement``, which it then built."""
    cfg, out, ours = run
    assert cfg.features.history.keys and cfg.features.history.label_time == "auto"
    for layout, recorded in [(RECSYS, "engagement"), (dataclasses.replace(RECSYS, kind="table"), "event")]:
        theirs = json.loads(json.dumps(ours))
        theirs["features"]["history"]["label_time"] = recorded  # what auto resolved to for the run's data
        _report(out, {"config": theirs, "layout": layout.to_dict()})
        check_features_out(cfg, out)
    theirs["features"]["history"]["label_time"] = "event"  # a RecSys run of label_time: event
    _report(out, {"config": theirs, "layout": RECSYS.to_dict()})
    with pytest.raises(ConfigError, match=re.escape("(features.history.label_time: engagement here, event there)")):
        check_features_out(cfg, out)
    _report(out, {"config": theirs, "layout": RECSYS.to_dict() | {"kind": 3}})
    with pytest.raises(ConfigError, match=re.escape("report.json: layout is damaged (key kind is a number, not a string)")):
        check_features_out(cfg, out)



def test_features_out_into_a_run_from_before_session_features_passes_with_them_off(run):
    """A run recorded before features.session existed (no such key) was refused as another config
    ('features.session: {...} here, (none) there'), though session features off build what it built."""
    cfg, out, ours = run
    theirs = json.loads(json.dumps(ours))
    del theirs["features"]["session"]
    _report(out, {"config": theirs})
    check_features_out(cfg, out)
    cfg.features.session.enabled = True  # on: another config
    with pytest.raises(ConfigError, match=re.escape("of another config (features.session: ")):
        check_features_out(cfg, out)


@pytest.mark.parametrize("report, why", [
    ('{"config": {"out": ', r"Expecting value.*: not JSON, cut short or another format"),
    ("[1, 2]", "it is an array, not an object"),
    ({"config": 5}, "key config is a number, not an object"),
    ({"run": {}}, "key config is missing"),
])
def test_features_out_into_a_damaged_report_is_refused(run, report, why):
    """A damaged report.json is said as atomic.read_json says one elsewhere ('<file> is damaged (...): <hint>'),
    not in check_features_out's own words ('cannot be read' / 'records no config')."""
    cfg, out, _ = run
    _report(out, report)
    with pytest.raises(ConfigError, match=rf"default.yaml: out: {re.escape(str(out))}/report.json is damaged \({why}\): "
                                          r"choose another --out \(features would replace the config.yaml of the run it "
                                          r"records\) \(from --set out="):
        check_features_out(cfg, out)
