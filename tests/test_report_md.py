"""report.md: what a reader must not miss (notes), what the numbers mean (glossary), the run's data and split."""

from __future__ import annotations

import re
from pathlib import Path

from rapids_engage.report_md import render_markdown


def _binary(**kw) -> dict:
    base = {"kind": "binary", "ap": 0.3, "rce": 10.0, "auc": 0.7, "positive_rate": 0.1, "n": 10_000, "oracle_rce": None,
            "best_iteration": 40, "baselines": {"constant": {"ap": 0.1, "rce": 0.0}, "te_logreg": {"ap": 0.2, "rce": 8.0}}}
    return base | kw


def _report(targets: dict, **kw) -> dict:
    return {"backend": "cpu", "n_workers": 2, "rows": {"train": 90_000, "valid": 10_000}, "targets": targets, "timings_s": {}} | kw


def test_notes_flag_weak_noisy_and_beaten_models():
    text = render_markdown(_report({
        "like": _binary(),
        "quote": _binary(rce=-0.3, positive_rate=0.005, best_iteration=0),
        "reply": _binary(ap=0.15, baselines={"te_logreg": {"ap": 0.2, "rce": 12.0}}),
    }))
    notes = text[text.index("## Notes"):text.index("## Reading the metrics")]
    assert "**quote**: RCE -0.30 ≤ 0" in notes and "**quote**: 50 positives" in notes and "1 boosting round(s)" in notes
    assert "**reply**: the te_logreg baseline is better on AP 0.2000 vs 0.1500, RCE 12.00 vs 10.00" in notes  # the tables' names
    assert "**like**" not in notes  # it beats its baselines, with enough positives and rounds
    one = render_markdown(_report({"quote": _binary(positive_rate=0.0001)}))
    assert "**quote**: 1 positive in the validation window" in one  # not "1 positives"


def test_a_target_without_validation_positives_is_not_called_noisy():
    """A rare target with no positive in the validation window (the demo's quote at 3,000 rows) has no AP, RCE or
    AUC (— in the table); the note said "0 positives in the validation window: its metrics are noisy"."""
    text = render_markdown(_report({"quote": _binary(ap=None, rce=None, auc=None, positive_rate=0.0, baselines={})}))
    notes = text[text.index("## Notes"):text.index("## Reading the metrics")]
    assert "**quote**: no positive in the validation window: its AP, RCE and AUC are undefined" in notes
    assert "noisy" not in notes


def test_a_note_shows_the_rce_as_the_table_does():
    """The table prints an RCE of -0.001 as 0.00 (no "-0.00"); the note beside it printed "RCE -0.00 ≤ 0"."""
    text = render_markdown(_report({"like": _binary(rce=-0.001)}))
    assert "| 0.00 |" in text and "**like**: RCE 0.00 ≤ 0" in text and "-0.00" not in text
    from rich.console import Console

    from rapids_engage.report import print_summary

    console = Console(width=300, record=True)
    print_summary(_report({"like": _binary(rce=-0.001)}), console, Path("r/report.json"))
    assert " 0.00 " in console.export_text() and "-0.00" not in console.export_text()  # the terminal table too


def test_no_notes_for_a_sound_model_and_no_empty_oracle_columns():
    text = render_markdown(_report({"like": _binary()}))
    assert "## Notes" not in text and "oracle" not in text.lower() and "-0.00" not in text
    assert "| **like** | 1,000 | 0.1000 |" in text  # positives beside the positive rate
    assert "**AP**" in text and "**te_logreg / te_linreg**" in text and "MAP@10 / NDCG@10" not in text


def test_the_glossary_names_the_positive_rate_rce_is_relative_to():
    """metrics.rce divides by the cross entropy of the scored rows' own positive rate (README: "CE(positive
    rate of the scored set)"); the glossary said "the training positive rate", which the constant baseline
    (the training rate, RCE -0.09 to -1.33 on the demo, not 0) contradicts in the same report."""
    glossary = render_markdown(_report({"like": _binary()}))
    rce = next(line for line in glossary.splitlines() if line.startswith("| **RCE** |"))
    assert "training positive rate" not in rce and "positive rate of the validation rows scored" in rce


def test_a_lost_worker_is_a_note_that_the_metrics_may_differ():
    """A run that lost a worker kept every row, but its models may have trained on fewer workers (RCE moved
    on the demo with one of two workers killed), so the note must not claim the results stand."""
    notes = render_markdown(_report({"like": _binary()}, workers_lost=1))
    assert "1 dask worker(s) of the start left the cluster" in notes and "no rows were lost" in notes
    assert "may differ slightly from an undisturbed run's" in notes and "results stand" not in notes


def test_count_targets_show_the_mean_predicted_count_and_the_split_in_dates():
    counts = {"points": {"kind": "count", "rmse_log1p": 1.1, "mae_log1p": 0.8, "rmse": 49.0, "mae": 13.0, "spearman": 0.2,
                         "mean": 14.5, "mean_pred": 3.7, "best_iteration": 20, "baselines": {}}}
    split = {"valid_hours": 72, "cutoff": 1_474_601_160, "min_time": 1_473_292_620, "max_time": 1_474_860_360}
    text = render_markdown(_report(counts, split=split, input={"source": "table", "path": "data/hn.csv"}))
    assert "| 3.70 |" in text and "Mean true count in the validation window: points 14.50" in text
    assert "count:poisson" in text and "| input | `data/hn.csv` |" in text
    assert "train: events from 2016-09-07 23:57 UTC up to 2016-09-23 03:26 UTC; validation: the 72 h after" in text


def test_the_split_line_names_a_gap_and_its_purged_rows():
    """split.gap_hours: training ends the gap before the cut-off, and the rows between are in neither split."""
    split = {"valid_hours": 72, "gap_hours": 24, "purged_rows": 1_234, "cutoff": 1_474_601_160, "min_time": 1_473_292_620,
             "max_time": 1_474_860_360}
    text = render_markdown(_report({"like": _binary()}, split=split))
    assert ("| split | train: events from 2016-09-07 23:57 UTC up to 2016-09-22 03:26 UTC; gap: the 24 h to 2016-09-23 "
            "03:26 UTC, 1,234 rows purged (`split.gap_hours`: in neither split); validation: the 72 h after (to "
            "2016-09-26 03:26 UTC) |") in text
    plain = render_markdown(_report({"like": _binary()}, split=split | {"gap_hours": 0, "purged_rows": 0}))
    assert "gap" not in plain and "up to 2016-09-23 03:26 UTC; validation: the 72 h after" in plain


def test_terminal_tables_put_ranking_metrics_in_their_own_table():
    from rich.console import Console

    from rapids_engage.report import metrics_tables

    base = {"constant": {"map@10": 0.18}, "popularity": {"map@10": 0.19}, "te_logreg": {"map@10": 0.195, "rce": 0.1}}
    ranked = _binary(**{"map@10": 0.21, "ndcg@10": 0.3, "mrr": 0.25, "group_auc": 0.6123, "tied@10": 0.17, "n_groups": 968,
                        "baselines": base})
    scores = ranked | {"rce": None, "objective": "rank:ndcg"}
    for click, objective in ((ranked, ""), (scores, ", rank:ndcg")):
        console = Console(width=200, record=True)
        tables = metrics_tables(_report({"click": click}, layout={"group": "impression_id"}))
        for table in tables:
            console.print(table)
        text = console.export_text()
        assert [t.title for t in tables] == ["validation metrics: binary targets (cpu, 10,000 rows)",
                                             f"validation metrics: ranking per impression_id (cpu, 968 groups with a positive{objective})"]
        ranking = text[text.index("ranking per"):]
        for header in ("MAP@10", "NDCG@10", "MRR", "group AUC", "tied@10", "MAP@10 constant", "MAP@10 popularity", "MAP@10 te_logreg"):
            assert header in ranking
        assert "0.2100" in ranking and "0.17" in ranking and "0.1900" in ranking and "0.6123" in ranking
        section = render_markdown(_report({"click": click}, layout={"group": "impression_id"})).split("### Ranking")[1]
        assert "| group AUC |" in section and "| 0.6123 |" in section and "group AUC: the ROC AUC within each group" in section
        has_rce = re.search(r"┃\s+RCE\s+┃", text[:text.index("ranking per")]) is not None
        assert has_rce == (click is ranked)  # a ranking model's scores have no RCE column
    assert len(metrics_tables(_report({"like": _binary()}))) == 1  # no group: no ranking table


def test_the_terminal_summary_says_a_ranking_models_ap_and_auc_pool_the_groups():
    """report.md says a rank:* model's AP / AUC pool scores not comparable across groups; the terminal table showed
    them (MIND click: AP 0.0378, below the constant's) without a word."""
    from rich.console import Console

    from rapids_engage.report import print_summary

    ranked = _binary(**{"map@10": 0.2045, "ndcg@10": 0.3, "n_groups": 968, "rce": None, "objective": "rank:ndcg"})
    printed = {}
    for name, click in (("rank", ranked), ("binary", ranked | {"objective": "binary:logistic"})):
        console = Console(width=300, record=True)
        print_summary(_report({"click": click}, layout={"group": "impression_id"}), console, Path("r/report.json"))
        printed[name] = " ".join(console.export_text().split())
    assert ("click: a rank:* objective, whose scores order the rows of a ranking group and are not comparable across "
            "groups; AP and AUC pool every group's rows, so read its ranking table (MAP@10, NDCG@10).") in printed["rank"]
    assert "pool" not in printed["binary"]


def test_skewed_features_get_a_section_a_note_and_a_terminal_line():
    from rich.console import Console

    from rapids_engage.report import print_summary

    skew = [{"feature": "cnt_news_id", "measure": "AUC", "train": 0.598, "valid": 0.457, "gain_share": 0.12}]
    report = _report({"click": _binary(skew=skew), "like": _binary(skew=[])})
    text = render_markdown(report)
    section = text[text.index("### Train/validation skew"):text.index("## Notes")]
    assert "| **click** | cnt_news_id | AUC | 0.598 | 0.457 | 12% |" in section and "label_delay" in section
    assert "**click**: the model leans on features that predict it in training but not in validation" in text
    assert "**like**" not in section
    console = Console(width=300, record=True)
    print_summary(report, console, Path("r/report.json"))
    printed = " ".join(console.export_text().split())
    assert ("skew: click leans on features that predict it in training but not in validation: cnt_news_id (AUC 0.60 → 0.46, "
            "12% of the gain)") in printed
    assert "### Train/validation skew" not in render_markdown(_report({"like": _binary(skew=[])}))


def test_the_summary_names_plots_only_when_the_run_drew_them():
    from rich.console import Console

    from rapids_engage.report import print_summary

    for plots, line in (({}, "report: r/report.json (and report.md)"),
                        ({"pr_curves": "plots/pr_curves.png"}, "report: r/report.json (and report.md, plots/)")):
        console = Console(width=300, record=True)
        print_summary({**_report({"like": _binary()}), "plots": plots}, console, Path("r/report.json"))
        assert console.export_text().splitlines()[-1] == line  # --no-plots printed "plots/" too


def test_the_audits_shuffled_label_run_says_so():
    """The audit's control run (<out>/shuffled-labels/) trains on permuted labels: its report must say so, or a
    reader sees models without skill and a config.yaml that reruns something else (the real labels)."""
    split = {"valid_hours": 24, "cutoff": 1_614_729_598, "min_time": 1_612_396_822, "max_time": 1_614_815_998}
    shuffled = render_markdown(_report({"like": _binary(rce=0.01)}, split=split | {"shuffled_labels_seed": 0}, config={}))
    assert "| labels | **training labels shuffled within each day** (seed 0)" in shuffled
    assert "`--config config.yaml` reruns it with the real labels (`audit` shuffles them)" in shuffled
    real = render_markdown(_report({"like": _binary()}, split=split, config={}))
    assert "shuffled" not in real and "`--config config.yaml` reruns it |" in real


def test_the_run_table_says_what_dask_spilled():
    """A run under cluster.memory_limit did not say whether it spilled (the README's measures name GiB spilled)."""
    assert "| spilled | 1.50 GiB written to disk by dask above cluster.memory_limit |" in render_markdown(
        _report({"like": _binary()}, spilled_bytes=3 * 2**29))
    assert "spilled" not in render_markdown(_report({"like": _binary()}, spilled_bytes=0))
    assert "| spilled | 3.0 MiB written" in render_markdown(_report({"like": _binary()}, spilled_bytes=3 * 2**20))  # not 0.00 GiB


def test_the_workers_row_says_how_many_training_ran_on_when_they_changed():
    """A worker joined before training (an adaptive cluster): the run table said '2' workers of models trained on 3."""
    assert "| workers | 2 |" in render_markdown(_report({"like": _binary()}, n_workers=2, n_workers_train=2))
    assert "| workers | 2 |" in render_markdown(_report({"like": _binary()}, n_workers=2))  # reports of earlier runs
    joined = render_markdown(_report({"like": _binary()}, n_workers=2, n_workers_train=3))
    assert "| workers | 2 at the start, 3 in training |" in joined
    assert "Training ran on 3 dask worker(s), not the 2 of the start" in joined


def test_a_ranking_objective_is_not_noted_as_beaten_on_pooled_ap():
    """MIND with ``rank:ndcg``: MAP@10 0.2045 against the constant's 0.1822 and popularity's 0.1896, but its scores,
    which order each impression's rows, pooled over every impression gave AP 0.0377 (AUC 0.468); the notes said
    "the constant baseline is better on AP 0.0378 vs 0.0377" and likewise popularity (whose AP no table shows)."""
    ranking = {"map@10": 0.2045, "ndcg@10": 0.2907, "mrr": 0.2529, "tied@10": 0.35, "n_groups": 968}
    base = {"ap": 0.0378, "rce": None, "auc": 0.48, "map@10": 0.1822, "ndcg@10": 0.2571}
    click = _binary(ap=0.0377, rce=None, auc=0.468, log_loss=None, objective="rank:ndcg", **ranking,
                    baselines={"constant": {**base, "rce": -0.05}, "popularity": base | {"map@10": 0.1896},
                               "te_logreg": {**base, "ap": 0.0432, "rce": 0.3, "map@10": 0.21}})
    text = render_markdown(_report({"click": click}))
    notes = text[text.index("## Notes"):text.index("## Reading the metrics")]
    assert "better on AP" not in notes and "constant baseline" not in notes and "popularity baseline" not in notes
    assert "**click**: the te_logreg baseline is better on MAP@10 0.2100 vs 0.2045." in notes  # its group metrics still
    assert "click: a `rank:*` objective" in text and "AP and AUC pool every group's rows" in text
    logistic = render_markdown(_report({"click": click | {"objective": "binary:logistic"}}))
    assert "the constant baseline is better on AP 0.0378 vs 0.0377" in logistic and "`rank:*`" not in logistic


def test_a_model_of_the_mean_count_is_not_told_to_train_for_the_mean():
    """HN with ``count:poisson`` / ``reg:tweedie``: report.md told both targets to train with count:poisson for the
    mean, and called the constant beside them the mean log1p count; it now says what they and their baselines predict."""
    def count(objective):
        return {"kind": "count", "rmse_log1p": 1.7, "mae_log1p": 1.6, "rmse": 48.0, "mae": 21.9, "spearman": 0.12,
                "mean": 14.5, "mean_pred": 15.6, "best_iteration": 25, "objective": objective, "baselines": {}}

    raw = render_markdown(_report({"points": count("count:poisson"), "comments": count("reg:tweedie")}))
    assert "for the mean, train" not in raw
    assert "points, comments: a model of the mean count, so its constant and creator_mean baselines predict" in raw
    mixed = render_markdown(_report({"points": count("count:poisson"), "comments": count("reg:squarederror")}))
    assert "for the mean, train" in mixed and "points: a model of the mean count" in mixed and "comments:" not in mixed


def test_the_ranking_plot_is_linked_in_the_plots_section_when_drawn():
    ranked = _report({"click": _binary(**{"map@10": 0.2, "ndcg@10": 0.29, "n_groups": 968})})
    text = render_markdown(ranked, {"pr_curves": "plots/pr_curves.png", "ranking": "plots/ranking.png"})
    plots = text[text.index("## Plots"):]
    assert "### Ranking within groups: NDCG@k and MAP@k\n\n![Ranking within groups: NDCG@k and MAP@k](plots/ranking.png)" in plots
    assert "ranking.png" not in render_markdown(ranked, {"pr_curves": "plots/pr_curves.png"})  # not drawn: not linked
