"""benchmarks/: speed.py and quality.py run end to end and write their JSON; docs/results.md and the
README's headline table and tutorial map are generated from the committed JSON and `readme_results.py
--check` catches hand edits."""
import importlib.util
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "benchmarks"


def _load(name):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


pytestmark = pytest.mark.usefixtures("one_thread")


def test_speed_quick_writes_json(tmp_path):
    out = tmp_path / "speed.json"
    assert _load("speed").main(["--quick", "--device", "cpu", "--repeats", "2", "--json", str(out)]) == 0
    r = json.loads(out.read_text())
    for key in ("benchmark", "device", "device_name", "date", "torch", "preset", "params", "flops", "items", "summary",
                "reference", "targets"):
        assert key in r, key
    assert r["benchmark"] == "speed" and r["preset"] == "test32" and r["flops"]["forward_per_slice"] > 0
    names = {(i["name"], i.get("batch"), i.get("precision")) for i in r["items"] if i["status"] == "ok"}
    for want in [("one_step", 1, "autocast"), ("one_step", 4, "autocast"), ("one_step", 1, "bf16"),
                 ("train_iteration", 4, "autocast"), ("train_fwd_bwd", 4, "autocast"), ("cts_2step", 4, "autocast"),
                 ("diffusion_1member", 4, "autocast"), ("cts_2step", 1, "autocast"), ("diffusion_1member", 1, "autocast")]:
        assert want in names, want
    for name in ("profile", "profile_train"):
        profile = next(i for i in r["items"] if i["name"] == name)
        assert profile["status"] == "ok" and profile["top_ops"] and profile["top_ops"][0]["pct"] > 0
    diffusion = next(i for i in r["items"] if i["name"] == "diffusion_1member" and i["batch"] == 4)
    assert diffusion["nfe"] == 39 and diffusion["ms_per_slice"] > 0
    assert r["summary"]["best_b1_ms"] > 0 and r["summary"]["diffusion_vs_one_step_per_slice"] > 1
    assert r["comparable_to_reference"] is False


def test_speed_time_budget_skips_gracefully(tmp_path):
    out = tmp_path / "speed.json"
    assert _load("speed").main(["--quick", "--device", "cpu", "--time-budget", "0", "--json", str(out)]) == 0
    r = json.loads(out.read_text())
    assert r["items"] and all(i["status"].startswith("skipped") for i in r["items"])


def test_quality_end_to_end_on_phantom(tmp_path):
    out = tmp_path / "quality.json"
    q = _load("quality")
    assert q.main(["--data", "phantom:16", "--preset", "test32", "--steps", "4", "--rows", "cts_m,supervised,diffusion",
                   "--diffusion-steps", "2", "--members", "2", "--eval-limit", "8", "--no-hd95", "--n-bootstrap", "0",
                   "--device", "cpu", "--json", str(out)]) == 0
    r = json.loads(out.read_text())
    assert r["benchmark"] == "quality" and r["complete"] and r["level"] == "per_slice" and r["steps"] == 4
    assert [row["row"] for row in r["rows"]] == ["cts_m", "supervised", "diffusion"]
    cts, sup, diff = r["rows"]
    assert set(cts["outputs"]) == {"one_step", "ensemble", "aux_head"}
    assert set(sup["outputs"]) == {"unet"} and set(diff["outputs"]) == {"ensemble", "aux_head"}
    assert diff["outputs_info"]["ensemble"]["nfe"] == 2 * 3
    for row in r["rows"]:
        assert row["train"]["steps"] == 4 and row["outputs"][next(iter(row["outputs"]))]["per_slice"]["n"] == 8
    # one seed (the default): the old layout, plus a one-entry per_seed and across_seeds without a std
    assert r["seed"] == 0 and r["seeds"] == [0] and r["grid"] == "native" and r["train_config"]["seed"] == 0
    for row in r["rows"]:
        assert row["seeds"] == [0] and [e["seed"] for e in row["per_seed"]] == [0]
        for name, summary in row["outputs"].items():
            assert row["per_seed"][0]["outputs"][name]["dice_mean"] == summary["per_slice"]["dice"]["mean"]
            assert row["across_seeds"][name] == {"dice_mean": summary["per_slice"]["dice"]["mean"], "dice_std": None,
                                                 "iou_mean": summary["per_slice"]["iou"]["mean"], "n": 1}


def test_quality_parallel_rows_merge_in_the_asked_order(tmp_path):
    """--parallel-rows: one process per row, the same steps each, one merged table in the order asked."""
    out = tmp_path / "quality.json"
    q = _load("quality")
    argv = ["--data", "phantom:16", "--preset", "test32", "--steps", "3", "--rows", "supervised,cts_nm", "--threads", "1",
            "--eval-limit", "4", "--no-hd95", "--n-bootstrap", "0", "--device", "cpu", "--parallel-rows", "--json", str(out)]
    assert q.main(argv) == 0
    r = json.loads(out.read_text())
    assert r["parallel_rows"] and r["complete"] and r["exit_codes"] == {"supervised": 0, "cts_nm": 0}
    assert r["ceiling"] is None                                  # phantoms have no native grid
    assert [row["row"] for row in r["rows"]] == ["supervised", "cts_nm"]
    assert all(row["train"]["steps"] == 3 for row in r["rows"])
    assert q._child_argv(["--rows=a,b", "--parallel-rows", "--json", "x.json", "--steps", "3"], "a", Path("y.json")) == \
        ["--steps", "3", "--rows", "a", "--json", "y.json", "--no-ceiling"]
    with pytest.raises(SystemExit):
        q.parse_args(["--steps", "auto:10", "--parallel-rows"])   # rows probed one by one cannot run in parallel


def test_quality_two_seeds_per_row(tmp_path):
    """--seeds 2,5: each row trained and scored once per seed; outputs stay the first seed's, across_seeds sums up."""
    out = tmp_path / "quality.json"
    q = _load("quality")
    assert q.main(["--data", "phantom:16", "--preset", "test32", "--steps", "2", "--rows", "supervised", "--seeds", "2,5",
                   "--grid", "model", "--threads", "1", "--eval-limit", "4", "--no-hd95", "--n-bootstrap", "0",
                   "--device", "cpu", "--json", str(out)]) == 0
    r = json.loads(out.read_text())
    assert r["complete"] and r["seeds"] == [2, 5] and r["seed"] == 2 and r["grid"] == "model"
    row = r["rows"][0]
    assert row["seeds"] == [2, 5] and [e["seed"] for e in row["per_seed"]] == [2, 5]
    assert all(e["status"] == "ok" and e["train"]["steps"] == 2 and e["train"]["seconds"] > 0 for e in row["per_seed"])
    first = row["outputs"]["unet"]["per_slice"]
    a, b = (e["outputs"]["unet"] for e in row["per_seed"])
    assert a == {"dice_mean": first["dice"]["mean"], "iou_mean": first["iou"]["mean"]}
    assert a["dice_mean"] != b["dice_mean"], "the second seed must train and sample differently"
    across = row["across_seeds"]["unet"]
    assert across["n"] == 2
    assert across["dice_mean"] == pytest.approx((a["dice_mean"] + b["dice_mean"]) / 2)
    assert across["dice_std"] == pytest.approx(abs(a["dice_mean"] - b["dice_mean"]) / 2 ** 0.5)   # sample std, n - 1
    assert across["iou_mean"] == pytest.approx((a["iou_mean"] + b["iou_mean"]) / 2)


def test_quality_records_cost_and_an_equal_seconds_supervised_row(tmp_path):
    """Every row records parameters, GFLOP per step and training seconds; --equal-seconds adds the supervised U-Net
    trained for the named CTS row's CPU seconds, seed by seed, right after that row."""
    from ctslib.baselines import SupervisedUNet
    from ctslib.config import preset
    from ctslib.model import CTSModel
    out = tmp_path / "quality.json"
    q = _load("quality")
    assert q.main(["--data", "phantom:16", "--preset", "test32", "--steps", "4", "--rows", "cts_m,supervised",
                   "--equal-seconds", "cts_m", "--seeds", "0,1", "--threads", "1", "--eval-limit", "4", "--no-hd95",
                   "--n-bootstrap", "0", "--noise-levels", "0", "--device", "cpu", "--json", str(out)]) == 0
    r = json.loads(out.read_text())
    assert r["complete"] and r["threads"] == 1
    assert [row["row"] for row in r["rows"]] == ["cts_m", q.EQUAL_ROW, "supervised"]
    cts, equal, sup = r["rows"]
    mcfg, _ = preset("test32", "cts_m", r["in_channels"])
    assert cts["cost"]["params"] == sum(p.numel() for p in CTSModel(mcfg).parameters())
    assert sup["cost"]["params"] == equal["cost"]["params"] == sum(p.numel() for p in SupervisedUNet(mcfg).parameters())
    flops = cts["cost"]["gflop_per_step"]
    assert sum(flops["parts"][k] for k in ("online_g_fwd_bwd", "online_h_fwd_bwd", "teacher_forward")) == \
        pytest.approx(flops["total"])
    assert 0 < flops["parts"]["teacher_h_forward"] < flops["parts"]["online_h_fwd_bwd"] < flops["total"]
    assert flops["total"] > 5 * sup["cost"]["gflop_per_step"]["total"] > 0
    assert equal["cost"]["gflop_per_step"] == sup["cost"]["gflop_per_step"]
    for row in r["rows"]:
        for e in row["per_seed"]:
            assert e["train"]["cpu_seconds"] > 0 and e["train"]["seconds"] > 0
        assert row["cost"]["cpu_seconds_per_step"] > 0 and row["cost"]["seconds_per_step"] > 0
    # the equal-seconds row: each seed's steps are that seed's CTS CPU seconds over the supervised step's
    plan = equal["equal_seconds"]
    assert plan["of"] == "cts_m" and plan["clock"] == "cpu" and plan["probe_seconds_per_step"] > 0
    for e, c in zip(equal["per_seed"], cts["per_seed"]):
        budget = c["train"]["cpu_seconds"]
        assert plan["budget_seconds"][str(e["seed"])] == budget
        assert e["train"]["steps"] == plan["steps"][str(e["seed"])] == max(round(budget / plan["probe_seconds_per_step"]), 1)
        assert e["train"]["steps"] > c["train"]["steps"]         # a CTS-M step costs several supervised steps
        assert budget / 4 < e["train"]["cpu_seconds"] < budget * 4
    assert all(e["train"]["steps"] == 4 for e in sup["per_seed"])
    assert "GFLOP/step" in q.cost_line(cts) and "ms CPU" in q.cost_line(equal)
    # the cost/Dice table of such runs: test32's g, its step cost against the supervised step, the Dice gap
    table = _load("cost_table").markdown([r])
    gap = 100 * (cts["across_seeds"]["one_step"]["dice_mean"] - equal["across_seeds"]["unet"]["dice_mean"])
    ratio = cts["cost"]["cpu_seconds_per_step"] / sup["cost"]["cpu_seconds_per_step"]
    assert "**phantom test, 32 px**" in table and f"| {ratio:.1f} |" in table and table.rstrip().endswith(f"| {gap:+.1f} |")
    assert "| base 16, mult 1,2, full resolution |" in table
    shared = json.loads(json.dumps(r))            # the same run, had its teacher taken the online h's signals
    shared["train_config"]["ct"]["teacher_signals"] = "online"
    assert "| base 16, mult 1,2, full resolution, teacher on the online h |" in _load("cost_table").markdown([shared])
    with pytest.raises(SystemExit):
        q.parse_args(["--rows", "supervised", "--equal-seconds", "cts_m"])     # the named row must be trained too


def test_quality_model_set_image_size_opens_the_data_at_that_size(tmp_path):
    """--model-set image_size=N trains and scores at N (the data follow the model), channels stay the data's."""
    out = tmp_path / "quality.json"
    q = _load("quality")
    assert q.main(["--data", "phantom:16", "--preset", "test32", "--steps", "1", "--rows", "supervised",
                   "--model-set", "image_size=16", "--threads", "1", "--eval-limit", "2", "--no-hd95",
                   "--n-bootstrap", "0", "--device", "cpu", "--json", str(out)]) == 0
    r = json.loads(out.read_text())
    assert r["complete"] and r["image_size"] == 16 and r["in_channels"] == 4      # phantoms: 4 channels, as BraTS
    with pytest.raises(SystemExit, match="in_channels"):
        q.main(["--data", "phantom:16", "--preset", "test32", "--steps", "1", "--model-set", "in_channels=3"])


def test_quality_seed_options():
    """--seeds parsing, the auto step budget shared by the seeds, and --seeds passed on to --parallel-rows children."""
    q = _load("quality")
    assert q.parse_args([]).seeds == [0] and q.parse_args(["--seed", "7"]).seeds == [7]
    assert q.parse_args(["--seeds", "0, 1,2"]).seeds == [0, 1, 2] and q.parse_args([]).grid == "native"
    for bad in (["--seeds", "1,1"], ["--seeds", "x"], ["--seeds", ","], ["--grid", "fine"]):
        with pytest.raises(SystemExit):
            q.parse_args(bad)
    probes = {"cts_m": 0.01, "supervised": 0.01}
    assert q.auto_steps(100, probes, 0.0, 1) == 4000 and q.auto_steps(100, probes, 0.0, 2) == 2000
    assert q.auto_steps(100, probes, 25.0, 2) == 1000            # each seed samples the diffusion row once
    assert q._child_argv(["--rows", "a,b", "--seeds", "0,1", "--parallel-rows"], "a", Path("y.json")) == \
        ["--seeds", "0,1", "--rows", "a", "--json", "y.json", "--no-ceiling"]
    per_seed = [{"seed": s, "outputs": {"x": {"dice_mean": d, "iou_mean": d / 2}}} for s, d in ((0, 0.5), (1, 0.7), (2, 0.9))]
    per_seed.append({"seed": 3, "status": "failed: boom"})
    assert q.across_seeds(per_seed)["x"] == {"dice_mean": pytest.approx(0.7), "dice_std": pytest.approx(0.2),
                                             "iou_mean": pytest.approx(0.35), "n": 3}


def test_quality_cpu_run_on_real_ddti(tmp_path, data_root):
    """The CI-sized run of the Table-1 pipeline on real data: DDTI train/test split, test32, a few steps."""
    out = tmp_path / "quality.json"
    assert _load("quality").main(["--data", f"ddti:{data_root / 'ddti'}", "--preset", "test32", "--steps", "3",
                                  "--rows", "cts_m,supervised,diffusion", "--diffusion-steps", "2", "--members", "2",
                                  "--train-limit", "64", "--no-hd95", "--n-bootstrap", "0", "--device", "cpu",
                                  "--json", str(out)]) == 0
    r = json.loads(out.read_text())
    assert r["data_kind"] == "ddti" and r["level"] == "per_slice" and r["complete"]
    assert r["test_items"] > 0 and all(row["outputs"] for row in r["rows"])
    for row in r["rows"]:
        for summary in row["outputs"].values():
            d = summary["per_slice"]["dice"]["mean"]
            assert summary["per_slice"]["n"] == r["test_items"] and 0.0 <= d <= 1.0 and summary["grid"] == "native"
    # the resolution ceiling: the expert masks at 32 px mapped back to 300 px lose detail, but not much
    ceiling = r["ceiling"]["outputs"]["resized_truth"]
    assert ceiling["grid"] == "native" and ceiling["per_slice"]["n"] == r["test_items"]
    assert 0.9 < ceiling["per_slice"]["dice"]["mean"] < 1.0


def test_quality_reads_packed_data_and_auto_steps(tmp_path):
    from benchmarks.packed import pack_splits
    pack = tmp_path / "ph.npz"
    pack_splits("phantom-us:16", 32, ("train", "test"), pack)
    out = tmp_path / "quality.json"
    assert _load("quality").main(["--data", f"packed:{pack}", "--preset", "test32", "--steps", "auto:1",
                                  "--rows", "supervised,diffusion", "--diffusion-steps", "2", "--members", "2",
                                  "--no-hd95", "--n-bootstrap", "0", "--device", "cpu", "--json", str(out)]) == 0
    r = json.loads(out.read_text())
    assert r["data_kind"] == "phantom-us" and r["in_channels"] == 1 and r["steps"] >= 10
    assert r["probe_seconds_per_step"]["supervised"] > 0 and r["probe_eval_seconds"]["diffusion"] > 0
    assert [row["status"] for row in r["rows"]] == ["ok", "ok"]


def test_readme_results_check(tmp_path):
    rr = _load("readme_results")
    results = BENCH / "results"
    assert any(results.glob("*.json")), "benchmarks/results/ must hold the committed JSON"
    assert rr.main(["--check"]) == 0, "generated results are stale: run python benchmarks/readme_results.py"
    page, readme = tmp_path / "results.md", tmp_path / "README.md"
    shutil.copy(REPO / "docs" / "results.md", page)
    shutil.copy(REPO / "README.md", readme)
    args = ["--page", str(page), "--readme", str(readme), "--results", str(results)]
    for path, marker in ((page, rr.START), (readme, rr.HEADLINE[0]), (readme, rr.TUTORIAL[0])):
        text = path.read_text()
        start = text.index(marker) + len(marker)
        path.write_text(text[:start] + "\nhand-typed 99.9% Dice\n" + text[start:])
        assert rr.main(["--check", *args]) == 1, marker
        assert rr.main(args) == 0
        assert path.read_text() == text
        assert rr.main(["--check", *args]) == 0


def test_readme_results_appends_markers(tmp_path):
    rr = _load("readme_results")
    page, readme = tmp_path / "results.md", tmp_path / "README.md"
    page.write_text("# Title\n\nText.\n")
    readme.write_text("# CTS\n")
    assert rr.main(["--page", str(page), "--readme", str(readme), "--results", str(tmp_path / "none")]) == 0
    text = page.read_text()
    assert text.startswith("# Title\n\nText.\n") and rr.START in text and rr.END in text
    assert "No benchmark results committed yet." in text
    front = readme.read_text()
    assert "No headline results committed yet." in front and "| [03_training](notebooks/03_training.ipynb) |" in front
    assert "not measured" in front


def test_readme_tutorial_map_reads_the_timing_json(tmp_path):
    rr = _load("readme_results")
    timing = {"cpu_seconds": {"03_training": 90.0}, "wall_seconds": {"03_training": 180.0}, "total_seconds": 300.0,
              "total_wall_seconds": 600.0, "cpu": "Some CPU", "cores": 2, "date": "2026-12-06 12:00:00",
              "load_before": 0.5, "load_after": 1.5}
    text = rr.render_tutorial(timing, REPO / "notebooks")
    assert "| [03_training](notebooks/03_training.ipynb) | Training CTS-M end to end | 1.5 |" in text
    assert "5.0 minutes in all" in text and "10.0 minutes at a load average of 0.5 to 1.5" in text and "Some CPU (2 cores)" in text


def test_quality_cuts_a_cts_row_at_the_deadline(tmp_path, monkeypatch):
    """A CTS row past the time budget is scored from its last checkpoint and marked as cut short."""
    q = _load("quality")
    served = {"n": 0}
    original = q.DeadlineDataset.__getitem__

    def getitem(self, i):
        served["n"] += 1
        if served["n"] > 5 * 16:          # the budget runs out during step 6 (batch 16)
            raise q.TimeBudgetExceeded("time budget spent")
        return original(self, i)
    monkeypatch.setattr(q.DeadlineDataset, "__getitem__", getitem)
    out = tmp_path / "quality.json"
    assert q.main(["--data", "phantom:32", "--preset", "test32", "--steps", "8", "--rows", "cts_nm", "--eval-limit", "8",
                   "--no-hd95", "--n-bootstrap", "0", "--device", "cpu", "--json", str(out)]) == 0
    row = json.loads(out.read_text())["rows"][0]
    assert row["status"].startswith("ok (training cut short")
    assert row["train"]["truncated"] and row["train"]["steps"] == 4 and row["train"]["requested_steps"] == 8


def test_readme_renders_ablations_as_one_table_sorted_by_settings():
    """Runs tagged "ablation: ..." become one row each (sorted by s1, then lr), apart from Table 1."""
    rr = _load("readme_results")

    def run(lr, s1, dice):
        scores = {"per_volume": {"dice": {"mean": dice, "std": 0.1}, "iou": {"mean": dice / 2}}}
        return {"benchmark": "quality", "tag": "ablation: CT settings", "device_kind": "cpu", "device_name": "cpu",
                "date": "2026-11-26", "torch": "x", "preset": "test32", "steps": 500, "batch_size": 16, "lr": lr,
                "train_config": {"s1": s1}, "data_kind": "lgg", "level": "per_volume",
                "rows": [{"row": "cts_m", "label": "CTS-M", "status": "ok", "outputs": {"one_step": scores}}]}
    text = rr.render([("b.json", run(2e-3, 10, 0.25)), ("a.json", run(5e-4, 5, 0.46)), ("c.json", run(2e-3, 5, 0.67))])
    assert "#### CT settings: LGG (brain MRI)" in text and "### Quality (Table 1" not in text
    rows = [line for line in text.splitlines() if line.startswith("| CTS-M")]
    assert [r.split("|")[2].strip() + "/" + r.split("|")[3].strip() for r in rows] == ["0.0005/5", "0.002/5", "0.002/10"]
    assert "| 67.0 ± 10.0 | - | - | `c.json` |" in rows[1]


def test_readme_renders_the_mean_over_seeds_and_the_grid():
    """A quality file with several seeds shows the across-seed mean ± std and says how many; `grid` is stated."""
    rr = _load("readme_results")

    def run(seeds, across=None, grid=None):
        scores = {"per_slice": {"dice": {"mean": 0.5, "std": 0.2}, "iou": {"mean": 0.4}}}
        row = {"row": "cts_m", "label": "CTS-M", "status": "ok", "outputs": {"one_step": scores},
               "outputs_info": {"one_step": {"desc": "consistency sample, 1 step", "nfe": 1}}}
        if across:
            row["across_seeds"] = {"one_step": across}
        d = {"benchmark": "quality", "tag": "", "device_kind": "cpu", "device_name": "cpu", "date": "2026-11-27",
             "torch": "x", "preset": "test32", "steps": 10, "batch_size": 16, "lr": 2e-3, "ema_rate": 0.5,
             "train_config": {"s1": 5}, "data_kind": "ddti", "level": "per_slice", "test_items": 8, "test_cases": 8,
             "seed": seeds[0], "seeds": seeds, "rows": [row]}
        return d if grid is None else {**d, "grid": grid}
    many = rr.render([("m.json", run([0, 1], {"dice_mean": 0.6, "dice_std": 0.05, "iou_mean": 0.45, "n": 2}, "native"))])
    assert "mean ± std over 2 seeds (0, 1)" in many and "per-image Dice, mean ± std over 2 seeds |" in many
    assert "| CTS-M | consistency sample, 1 step | 1 | 60.0 ± 5.0 | 45.0 |" in many
    assert "scored on the native grid" in many
    part = rr.render([("p.json", run([0, 1, 2], {"dice_mean": 0.6, "dice_std": 0.05, "iou_mean": 0.45, "n": 2}, "model"))])
    assert "| 60.0 ± 5.0 (2 seeds) | 45.0 |" in part and "scored at the model's resolution" in part
    fallback = run([0], grid="native")   # asked for the native grid, but the data had none: the summaries say so
    fallback["rows"][0]["outputs"]["one_step"]["grid"] = "model"
    assert "scored at the model's resolution" in rr.render([("f.json", fallback)])
    one = rr.render([("o.json", run([0], {"dice_mean": 0.5, "dice_std": None, "iou_mean": 0.4, "n": 1}))])
    assert "| 50.0 ± 20.0 | 40.0 |" in one and "seeds" not in one and "grid" not in one
    assert "scored at the model's resolution" in one      # files without `grid` predate native-grid scoring
    # a bare CTS row's recipe is read off the file's TrainConfig, so a preset's later default cannot relabel it
    assert "EMA 0.5; CTS rows: paper's CT)" in one                       # no anchor fields: TrainConfig's defaults
    anchored = run([0]); anchored["train_config"] = {"s1": 5, "anchor": 10.0, "anchor_logit_scale": 8.0,
                                                      "sigma_max_share": 0.5, "seg_loss": "bce_dice"}
    assert "CTS rows: anchored: beta 10 bce_dice on logits 8 f, sigma_max share 0.5, L_S bce_dice)" in \
        rr.render([("a.json", anchored)])
    named = run([0]); named["rows"][0]["row"] = "cts_m@paper"               # the row names its own recipe
    assert "CTS rows" not in rr.render([("n.json", named)])


def test_readme_renders_the_resolution_ceiling():
    """quality.py's `ceiling` (expert masks resized and mapped back) is one more table row, from its own numbers."""
    rr = _load("readme_results")
    scores = {"per_slice": {"dice": {"mean": 0.5, "std": 0.2}, "iou": {"mean": 0.4}, "n": 8}, "grid": "native"}
    ceiling = {"per_slice": {"dice": {"mean": 0.931, "std": 0.024}, "iou": {"mean": 0.874}, "n": 8}, "grid": "native"}
    d = {"benchmark": "quality", "tag": "", "device_kind": "cpu", "device_name": "cpu", "date": "2026-11-27", "torch": "x",
         "preset": "test32", "steps": 10, "batch_size": 16, "lr": 2e-3, "ema_rate": 0.5, "train_config": {"s1": 5},
         "data_kind": "ddti", "level": "per_slice", "test_items": 8, "test_cases": 8, "seed": 0, "seeds": [0],
         "grid": "native", "rows": [{"row": "supervised", "label": "U-Net", "status": "ok", "outputs": {"unet": scores},
                                     "outputs_info": {"unet": {"desc": "U-Net y_hat > 0.5", "nfe": 0}}}],
         "ceiling": {"label": "Expert mask at the model's size", "desc": "resolution ceiling",
                     "outputs": {"resized_truth": ceiling}}}
    text = rr.render([("c.json", d)])
    assert "| Expert mask at the model's size | resolution ceiling; no training, ± over the test split | - | 93.1 ± 2.4 | 87.4 |" in text
    assert "Expert mask" not in rr.render([("n.json", {**d, "ceiling": None})])


def _options_with_two_defaults(help_text: str) -> list[str]:
    """Option entries of an argparse --help text that print "(default:" more than once."""
    entries, current = [], []
    for line in help_text.splitlines():
        if re.match(r"^  -", line) and current:
            entries.append(" ".join(current))
            current = []
        current.append(line.strip())
    entries.append(" ".join(current))
    return [e for e in entries if e.count("(default:") > 1]


@pytest.mark.parametrize("script", ["quality", "speed", "pack_data", "readme_results"])
def test_benchmark_help_states_each_default_once(script):
    out = subprocess.run([sys.executable, str(BENCH / f"{script}.py"), "--help"], capture_output=True, text=True,
                         check=True, cwd=BENCH.parent).stdout
    assert _options_with_two_defaults(out) == []
    assert _options_with_two_defaults("  --x X  thing (default: a) (default: None)\n  --y  ok (default: 1)") == \
        ["--x X  thing (default: a) (default: None)"]


def test_level_sweep_scores_every_checkpoint_and_refuses_the_test_split(tmp_path, tiny_checkpoint):
    for seed in (0, 1):
        shutil.copytree(tiny_checkpoint("phantom:8", seed).parent, tmp_path / "runs" / f"seed{seed}")
    sweep = _load("level_sweep")
    out = tmp_path / "sweep.json"
    assert sweep.main(["--data", "phantom:8", "--work-dir", str(tmp_path / "runs"), "--levels", "0.1,2",
                       "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert sorted(result["checkpoints"]) == ["seed0/ckpt.pt", "seed1/ckpt.pt"]
    assert result["best_tau"] in (0.1, 2.0) and result["split"] == "val"
    means = result["multistep_mean"]
    assert means[str(result["best_tau"])] == max(means.values())
    with pytest.raises(SystemExit):
        sweep.main(["--data", "phantom:8", "--work-dir", str(tmp_path / "runs"), "--split", "test"])
