"""make compare: replicates grouped by their params (seeds aside), mean ± sd, a verdict only where a
spread was measured; the noise floor file and the CI summary beside it."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mnist_ae.comparison import compare_with, flat_params, load_groups, report
from mnist_ae.core.errors import UserError
from mnist_ae.headline import headline_pattern
from mnist_ae.noise_floor import Floor, against_floor, floor_sigmas, load_floor, spread_of

PROJECT = Path(__file__).resolve().parents[1]

METRICS = "test_mse|knn_accuracy_codes|(pixel_)?cluster_accuracy"


def _row(name: str, seed: int, rng: np.random.Generator, test_mse: float = 0.011, sd: float = 1e-4,
         **params: object) -> dict:
    """One experiment as dvc.api.exp_show gives it: flat params, metrics, and DVC's own columns."""
    return {"Experiment": name, "rev": name[:7], "typ": "branch_commit", "State": "Success",
            "train.seed": seed, "embed.seed": 0, "model.kind": "mlp", "model.code_dim": 16,
            "model.mlp.hidden": [256], **params,
            "test_mse": test_mse + rng.normal(scale=sd), "knn_accuracy_codes": 0.91 + rng.normal(scale=0.005),
            "cluster_accuracy": 0.58 + rng.normal(scale=0.01), "pixel_cluster_accuracy": 0.53 + rng.normal(scale=0.01),
            "src/mnist_ae/core": "0123abcd"}


@pytest.fixture
def params_file() -> dict[str, object]:
    """The committed params, flat, as make compare reads them (git show HEAD:params.yaml)."""
    return flat_params("train:\n  seed: 0\nembed:\n  seed: 0\nmodel:\n  kind: mlp\n  code_dim: 16\n"
                       "  mlp:\n    hidden: [256]\ndata:\n  md5: {}\n")


def _groups(rows: list[dict], params: dict[str, object], baseline: str | None = None):
    return load_groups(METRICS, baseline, params, rows=rows)[:3]


def test_replicates_merge_and_other_params_never_do(params_file: dict[str, object]) -> None:
    rng = np.random.default_rng(0)
    rows = [_row(f"base-{s}", s, rng) for s in range(3)]
    rows += [_row(f"wide-{s}", s, rng, **{"model.mlp.hidden": [512]}) for s in range(3)]
    rows += [_row(f"small-{s}", s, rng, **{"model.code_dim": 8}) for s in range(2)]
    rows += [_row("other-embed-seed", 0, rng, **{"embed.seed": 7})]  # a seed too: a replicate of the baseline
    rows += [{"Experiment": "queued", "rev": "abc", "State": "Queued"}, {"rev": "workspace", "State": None}]
    groups, baseline, metrics, not_done = load_groups(METRICS, None, params_file, rows=rows)
    assert not_done == 1
    assert [g.n for g in groups] == [4, 3, 2]
    assert set(baseline.runs["Experiment"]) == {"base-0", "base-1", "base-2", "other-embed-seed"}
    assert [g.label(baseline) for g in groups] == ["baseline", 'model.mlp.hidden=[512]', "model.code_dim=8"]
    assert metrics == ["test_mse", "knn_accuracy_codes", "cluster_accuracy", "pixel_cluster_accuracy"]
    # The same params and seeds twice (a rerun, or main beside its own experiment) count once.
    again = _groups([*rows, _row("base-0-again", 0, rng)], params_file)[1]
    assert baseline.n == again.n
    # A configuration that does not measure a metric at all (embed.manifold off) is compared on the rest.
    unmeasured = [{**row, "knn_accuracy_codes": None} for row in rows if row.get("Experiment", "").startswith("wide")]
    groups, baseline, metrics = _groups([*rows[:3], *unmeasured], params_file)
    assert "knn_accuracy_codes" not in set(compare_with(groups[1], baseline, metrics)["metric"])


def test_a_difference_of_several_sd_is_beyond_noise_and_a_small_one_is_not(params_file: dict[str, object]) -> None:
    rng = np.random.default_rng(1)
    rows = [_row(f"base-{s}", s, rng) for s in range(5)]
    rows += [_row(f"far-{s}", s, rng, test_mse=0.011 + 5e-4, **{"model.code_dim": 32}) for s in range(5)]
    rows += [_row(f"near-{s}", s, rng, test_mse=0.011 + 2e-5, **{"model.code_dim": 8}) for s in range(5)]
    groups, baseline, metrics = _groups(rows, params_file)
    far, near = (compare_with(g, baseline, metrics).set_index("metric") for g in groups[1:])
    assert far.loc["test_mse", "verdict"] == "beyond noise"
    assert near.loc["test_mse", "verdict"] == "within noise"
    assert 3e-4 < float(far.loc["test_mse", "difference"]) < 7e-4  # 5e-4, give or take the noise


def test_a_single_seed_group_is_never_judged(params_file: dict[str, object]) -> None:
    rng = np.random.default_rng(2)
    rows = [_row(f"base-{s}", s, rng) for s in range(3)]
    rows.append(_row("once", 0, rng, test_mse=1.0, **{"model.kind": "conv"}))
    groups, baseline, metrics = _groups(rows, params_file)
    table = compare_with(groups[1], baseline, metrics)
    assert set(table["verdict"]) == {"spread unknown (n = 1): not judged"}
    text = report(groups, baseline, metrics, markdown=True)
    once = text[text.index("model.kind=conv: n = 1 (once)"):]  # its section: nothing judged
    assert "beyond noise" not in once and "within noise" not in once


def test_the_codes_are_set_against_the_pixels_of_the_same_replicates(params_file: dict[str, object]) -> None:
    rng = np.random.default_rng(3)
    text = report(*_groups([_row(f"base-{s}", s, rng) for s in range(4)], params_file), markdown=False)
    assert "The codes against the pixels" in text and "the codes beyond noise" in text  # 0.58 against 0.53


@pytest.mark.parametrize(("rows", "baseline", "message"), [
    ("none", None, "no finished experiments to compare"),
    ("two", "nope", r"--baseline nope: no such experiment; there are a-0, a-1"),
    ("one-lacks", None, r"metrics missing in some replicates: knn_accuracy_codes in a-1"),
    ("conv-only", None, "no experiment has the committed params.yaml"),
])
def test_bad_input_is_one_line(rows: str, baseline: str | None, message: str, params_file: dict[str, object]) -> None:
    rng = np.random.default_rng(4)
    made = {"none": [], "two": [_row(f"a-{s}", s, rng) for s in range(2)],
            "one-lacks": [_row("a-0", 0, rng), {**_row("a-1", 1, rng), "knn_accuracy_codes": None}],
            "conv-only": [_row("c-0", 0, rng, **{"model.kind": "conv"})]}
    with pytest.raises(UserError, match=message) as error:
        _groups(made[rows], params_file, baseline)
    assert "\n" not in str(error.value)


def _floor(**sds: float) -> Floor:
    return Floor.model_validate({"seeds": [0, 1, 2, 3, 4], "overrides": [], "metrics": {
        name: {"n": 5, "mean": 0.5, "sd": sd, "min": 0.0, "max": 1.0} for name, sd in sds.items()}})


def test_the_floor_flags_changes_beyond_its_sd() -> None:
    floor = _floor(test_mse=1e-4, cluster_accuracy=0.01)
    table = against_floor({"test_mse": (0.0110, 0.0110 + (floor_sigmas(5) + 0.5) * 1e-4),
                           "cluster_accuracy": (0.59, 0.60), "val_mse": (0.1, 0.2)}, floor).set_index("metric")
    assert table.loc["test_mse", "verdict"] == "**beyond noise**"
    assert table.loc["cluster_accuracy", "verdict"] == "within noise"
    assert "val_mse" not in table.index  # not a headline metric: no floor


def test_the_committed_floor_holds_the_metrics_make_exp_show_shows() -> None:
    """Every headline metric the committed metrics files have (and the manifold's, which the floor
    measures with embed.manifold on) has a floor, and the floor has nothing else: a metric renamed in
    a stage, or in mnist_ae/headline.py, fails here until make noise-floor is rerun."""
    floor = json.loads((PROJECT / "metrics/noise_floor.json").read_text())
    pattern = re.compile(headline_pattern())
    committed = {}
    for path in ("metrics/evaluate.json", "metrics/embed.json", "metrics/pixel_baseline.json",
                 "metrics/train/metrics.json"):
        committed |= json.loads((PROJECT / path).read_text())
    headline = {name for name in committed if pattern.fullmatch(name)}
    manifold = {f"{who}manifold_{score}" for who in ("", "pixel_") for score in ("accuracy", "nmi", "ari")}
    assert set(floor["metrics"]) == headline | manifold
    entries = floor["metrics"].values()
    assert len(floor["seeds"]) >= 5 and all(entry["n"] == len(floor["seeds"]) for entry in entries)
    assert all(entry["min"] <= entry["mean"] <= entry["max"] and entry["sd"] >= 0 for entry in entries)


def test_the_spread_needs_two_replicates(params_file: dict[str, object]) -> None:
    rng = np.random.default_rng(5)
    _, baseline, metrics = _groups([_row("a-0", 0, rng)], params_file)
    with pytest.raises(UserError, match="needs 2 replicates or more"):
        spread_of(baseline.runs, metrics)
    assert params_file["model.mlp.hidden"] == [256]


def test_rows_as_exp_show_gives_them_group_and_find_the_baseline(params_file: dict[str, object]) -> None:
    """dvc.api.exp_show gives 0.0 for a seed, "[256]" for a list, "True" for true, "None" for a metric
    an experiment lacks, and leaves out an empty mapping: none of it splits replicates or hides the
    baseline; the commit's own row counts after its newer experiment of the same seeds."""
    rng = np.random.default_rng(6)

    def shown(row: dict) -> dict:
        row = {**row, "train.seed": float(row["train.seed"]), "embed.seed": 0.0, "model.code_dim": 16.0,
               "model.mlp.hidden": "[256]", "embed.manifold": "True", "src/mnist_ae/core": "abc"}
        return row
    rows = [shown(_row(f"e-{s}", s, rng)) for s in range(3)]
    rows.append({**shown(_row("main", 0, rng, test_mse=5.0)), "typ": "baseline", "Experiment": None, "rev": "main"})
    groups, baseline, _ = _groups(rows, params_file | {"embed.manifold": True})
    assert len(groups) == 1 and baseline.n == 3 and set(baseline.runs["Experiment"]) == {"e-0", "e-1", "e-2"}
    assert baseline.runs["test_mse"].max() < 1  # seed 0's experiment, not the commit's row
    assert not baseline.mixed_code
    rows[1]["src/mnist_ae/core"] = "def"  # one replicate ran on other code
    assert _groups(rows, params_file | {"embed.manifold": True})[1].mixed_code


def test_the_threshold_is_students_t_times_root_two_as_computed_by_hand() -> None:
    """t(0.975) from a printed table: 2.776 at 4 degrees of freedom, 4.303 at 2; times sqrt(2) = 1.4142."""
    assert floor_sigmas(5) == pytest.approx(2.7764 * 1.41421, abs=1e-3)  # 3.926
    assert floor_sigmas(3) == pytest.approx(4.3027 * 1.41421, abs=1e-3)  # 6.085
    floor = _floor(test_mse=1e-4)
    for sds, said in ((3.92, "within noise"), (3.93, "**beyond noise**"), (0.0, "within noise")):
        table = against_floor({"test_mse": (0.011, 0.011 + sds * 1e-4)}, floor).set_index("metric")
        assert table.loc["test_mse", "verdict"] == said, sds
    still = against_floor({"test_mse": (0.011, 0.011)}, _floor(test_mse=0.0)).set_index("metric")
    assert still.loc["test_mse", "verdict"] == "within noise"  # no change is no news, even with no spread
    odd = against_floor({"test_mse": ("0.011", 0.012)}, floor).set_index("metric")
    assert odd.loc["test_mse", "verdict"] == "not a number"


GOOD_FLOOR = {"seeds": [0, 1, 2], "overrides": ["embed.manifold=true"],
              "metrics": {"test_mse": {"n": 3, "mean": 0.011, "sd": 5e-5, "min": 0.0109, "max": 0.0112}}}


@pytest.mark.parametrize(("damage", "message"), [
    ("{not json", r"is not JSON"),
    ({"seeds": [0, 1, 2], "overrides": []}, r"metrics: missing"),
    ({**GOOD_FLOOR, "seeds": [0]}, r"seeds: List should have at least 2 items"),
    ({**GOOD_FLOOR, "seeds": [0, 0, 1]}, r"repeat a seed"),
    (("sd", -1e-4), r"metrics\.test_mse\.sd: Input should be greater than or equal to 0"),
    (("sd", "NaN"), r"metrics\.test_mse\.sd: Input should be a finite number"),
    (("sd", "wide"), r"metrics\.test_mse\.sd: Input should be a valid number"),
    (("n", 2), r"metrics\.test_mse\.n is 2, but the floor has 3 seeds"),
    (("n", 1), r"metrics\.test_mse\.n: Input should be greater than or equal to 2"),
    (("mean", 0.5), r"mean 0\.5 is outside \[min, max\]"),
])
def test_a_damaged_floor_is_one_line_naming_the_field(damage: object, message: str, tmp_path: Path) -> None:
    path = tmp_path / "noise_floor.json"
    assert load_floor(_write_floor(path, GOOD_FLOOR)).metrics["test_mse"].n == 3
    if isinstance(damage, tuple):
        field, value = damage
        damaged = json.loads(json.dumps(GOOD_FLOOR))
        damaged["metrics"]["test_mse"][field] = value
        damage = damaged
    with pytest.raises(UserError, match=message) as error:
        load_floor(_write_floor(path, damage))
    assert "\n" not in str(error.value) and str(error.value).endswith("remake it with make noise-floor")


def _write_floor(path: Path, content: object) -> Path:
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


def test_the_ci_summary_refuses_a_damaged_floor_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics" / "noise_floor.json").write_text('{"seeds": [0, 1]}')
    result = subprocess.run([sys.executable, PROJECT / "scripts" / "floor_summary.py", "main"], cwd=tmp_path,
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: metrics/noise_floor.json: overrides: missing (and 1 more): remake it with make noise-floor"]


def test_a_failed_replicate_is_named_beside_its_group(params_file: dict[str, object]) -> None:
    rng = np.random.default_rng(7)
    rows = [_row(f"base-{s}", s, rng) for s in range(3)]
    rows += [_row(f"wide-{s}", s, rng, **{"model.mlp.hidden": [512]}) for s in range(2)]
    rows.append({**_row("wide-2", 2, rng, **{"model.mlp.hidden": "[512]"}), "State": "Failed", "test_mse": None})
    groups, baseline, metrics, not_done = load_groups(METRICS, None, params_file, rows=rows)
    assert [g.n for g in groups] == [3, 2] and groups[1].failed == ("wide-2",) and baseline.failed == ()
    text = report(groups, baseline, metrics, markdown=False, not_done=not_done)
    assert "Failed, left out: wide-2 (dvc queue logs NAME says why)" in text


def test_an_invalid_metric_pattern_is_one_line(params_file: dict[str, object]) -> None:
    rows = [_row(f"base-{s}", s, np.random.default_rng(8)) for s in range(2)]
    message = "--metrics 'test_(mse' is not a regular expression: missing )"
    with pytest.raises(UserError, match=re.escape(message)) as error:
        load_groups("test_(mse", None, params_file, rows=rows)
    assert "\n" not in str(error.value)


def test_the_headline_metrics_are_what_the_stages_write() -> None:
    """Each declared headline metric is in a committed metrics file (or the manifold's, which the
    committed run leaves off), and the pattern matches dvc exp show's column names, file path or not."""
    from mnist_ae.headline import HEADLINES, PIXEL_PREFIX, headline_names, headline_tolerance

    written = {}
    for path in ("metrics/evaluate.json", "metrics/embed.json", "metrics/pixel_baseline.json",
                 "metrics/train/metrics.json"):
        written |= json.loads((PROJECT / path).read_text())
    manifold = {name for name in headline_names() if "manifold_" in name}
    assert set(headline_names()) - manifold <= set(written)
    assert {name for name in written if name.startswith(PIXEL_PREFIX)} <= set(headline_names())
    pattern = re.compile(headline_pattern())
    assert pattern.fullmatch("metrics/evaluate.json:test_mse") and pattern.fullmatch("pixel_manifold_nmi")
    assert not pattern.fullmatch("val_mse") and not pattern.fullmatch("pixel_probe_accuracy")
    assert headline_tolerance("pixel_cluster_ari") == headline_tolerance("cluster_ari") == 0.02
    assert headline_tolerance("pixel_probe_accuracy") is None and headline_tolerance("val_kl") is None
    assert len({h.name for h in HEADLINES}) == len(HEADLINES)


def test_a_failed_replicate_retried_since_is_no_longer_named_failed(params_file: dict[str, object]) -> None:
    rng = np.random.default_rng(9)
    rows = [_row(f"base-{s}", s, rng) for s in range(3)]
    rows.append({**_row("base-2", 2, rng), "State": "Failed", "test_mse": None})  # its first try
    groups, _, _, _ = load_groups(METRICS, None, params_file, rows=rows)
    assert groups[0].n == 3 and groups[0].failed == ()
