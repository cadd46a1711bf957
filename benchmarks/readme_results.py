"""Write the generated results from the committed JSON files (no hand-typed numbers).

    python benchmarks/readme_results.py            # rewrite docs/results.md and README.md between their markers
    python benchmarks/readme_results.py --check    # exit 1 if either is out of date (a test runs this)

docs/results.md, between `<!-- results:start -->` and `<!-- results:end -->`: every
benchmarks/results/*.json whose "benchmark" is "speed" or "quality" (files from benchmarks/speed.py
and benchmarks/quality.py). GPU results come first, then CPU runs; within each, files are taken in name
order. A quality file from `quality.py --seeds` with several seeds shows, per output, the mean ± std over
the seeds of the test-split mean Dice (`across_seeds`); every quality table says where it was scored
(files without a top-level `grid` predate native-grid scoring: the model's resolution).

README.md, the landing page, gets two small blocks: the headline table (`<!-- headline:start -->`, from
the three-seed CPU recipe files in HEADLINE_FILES) and the tutorial map (`<!-- tutorial:start -->`: every
numbered notebook with its title and its quick-profile minutes from benchmarks/tutorial_timing.py's JSON).
A file without its markers gets them appended.
"""
from __future__ import annotations

import argparse
import difflib
import json
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from ctslib.cli import HELP_FMT  # noqa: E402
from ctslib.config import train_config_from_dict  # noqa: E402
from ctslib.data.spec import DATASETS  # noqa: E402
START, END = "<!-- results:start -->", "<!-- results:end -->"
ROW_ORDER = ("cts_nm", "cts_m", "cts_fm", "supervised", "supervised_mse", "diffusion")   # the paper's Table 1 order
RECIPE_ORDER = (None, "paper", "anchored")                # rows "cts_m@paper": the paper's recipe before ours
LEVEL_LABEL = {"per_volume": "per-patient Dice", "per_slice": "per-image Dice"}
DATA_NAME = {k: d.label for k, d in DATASETS.items() if d.label}


def load_results(folder: Path) -> list[tuple[str, dict]]:
    out = []
    for path in sorted(folder.glob("*.json")):
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if isinstance(data, dict) and data.get("benchmark") in ("speed", "quality"):
            out.append((path.name, data))
    return sorted(out, key=lambda item: (item[1].get("device_kind") != "cuda", item[0]))


def f(v, fmt="{:.2f}", none="n/a") -> str:
    return none if v is None else fmt.format(v)


def where(d: dict) -> str:
    return f"{d.get('device_name', '?')} ({d.get('device_kind', '?')}), torch {d.get('torch', '?')}, {d.get('date', '?')[:10]}"


# ------------------------------------------------------------------------------------------ speed
def memory_format(r: dict, d: dict) -> str:
    """The record's memory format; files written before speed.py recorded it ran channels_last on CUDA."""
    fmt = r.get("memory_format") or d.get("default_memory_format") or \
        ("channels_last" if d.get("device_kind") == "cuda" else "contiguous")
    return "NHWC" if fmt == "channels_last" else "NCHW"


TARGET_ROWS = (  # (label, records, key to minimise, target test)
    ("batch-1 latency (ms), target <= 4", lambda r: r["name"] == "one_step" and r["batch"] == 1, "ms",
     lambda r, d: r["ms"] <= d["targets"]["b1_ms"]),
    ("batched one-step (ms per slice), target <= 1.0 and >= 35% of peak", lambda r: r["name"] == "one_step" and r["batch"] >= 16,
     "ms_per_slice", lambda r, d: r["ms_per_slice"] <= d["targets"]["batched_ms_per_slice"]
     and (r.get("pct_peak_table") or 0) >= d["targets"]["batched_pct_peak"]),
    ("training iteration at batch 8 (ms), target >= 30% of peak", lambda r: r["name"] == "train_iteration" and r["batch"] == 8,
     "ms", lambda r, d: (r.get("pct_peak_table") or 0) >= d["targets"]["train_pct_peak"]),
)
REFERENCE_KEY = {"ms": None, "ms_per_slice": "ms_per_slice_b16"}


def speed_targets(speed: list[tuple[str, dict]]) -> list[str]:
    """The best record per target over every GPU paper256 speed file, with its source and the released-code ratio."""
    runs = [(n, d) for n, d in speed if d.get("comparable_to_reference")]
    if not runs:
        return []
    lines = ["#### The issue's targets: best measured per target (paper256, bf16)", "",
             "| target | best | configuration | % of peak | released code / ours | met | source |", "|---|---|---|---|---|---|---|"]
    for label, pick, key, test in TARGET_ROWS:
        cands = [(r, n, d) for n, d in runs for r in d.get("items", []) if r["status"] == "ok" and key in r and pick(r)]
        if not cands:
            lines.append(f"| {label} | n/a | | | | | |")
            continue
        r, n, d = min(cands, key=lambda c: c[0][key])
        ref = d["reference"]
        ref_v = ref["ms_b1"] if r["name"] == "one_step" and r["batch"] == 1 else \
            ref["ms_per_slice_b16"] if r["name"] == "one_step" else ref["ms_train_step_b8"]
        config = f"{r['precision']} / {r['mode']} / {memory_format(r, d)}, batch {r['batch']}"
        lines.append(f"| {label} | {r[key]:.3f} | {config} | {f(r.get('pct_peak_table'), '{:.1f}')} | "
                     f"{ref_v / r[key]:.2f}x | {'yes' if test(r, d) else 'no'} | `{n}` |")
    return lines + [""]


def speed_section(name: str, d: dict) -> list[str]:
    lines = [f"#### Speed: preset `{d['preset']}` ({d['params']['total']:,} parameters) on {where(d)}", "",
             f"Source: `benchmarks/results/{name}`" + (" (CPU smoke run: a pipeline check, not a speed claim)"
                                                     if d.get("device_kind") != "cuda" else ""), ""]
    fl = d.get("flops") or {}
    if fl:
        lines.append(f"FLOPs (torch.utils.flop_counter): {fl['forward_per_slice'] / 1e9:.1f} GFLOP per forward per slice, "
                     f"{fl['train_step'] / 1e12:.2f} TFLOP per training step.")
    peaks = []
    if d.get("peak_tflops_table"):
        peaks.append(f"datasheet dense bf16 {d['peak_tflops_table']:.0f} TFLOP/s ({d['peak_table_name']})")
    if d.get("peak_tflops_measured"):
        peaks.append(f"measured matmul {d['peak_tflops_measured']:.1f} TFLOP/s")
    if peaks:
        lines.append("Peaks: " + "; ".join(peaks) + ".")
    lines += ["", "| what | batch | precision / mode / layout | ms per call | ms per slice | TFLOP/s | % of peak | % of matmul |",
              "|---|---|---|---|---|---|---|---|"]
    for r in d.get("items", []):
        if r["name"] in ("flops", "peak", "profile", "profile_train"):
            continue
        mode = f"{r.get('precision', '')} / {r.get('mode', '')} / {memory_format(r, d)}"
        if not r["status"].startswith("ok"):
            lines.append(f"| {r['name']} | {r.get('batch', '')} | {mode} | {r['status']} | | | | |")
            continue
        per = f(r.get("ms_per_slice"), "{:.3f}", "")
        if r["name"].startswith("train"):
            per = f"{r['img_per_s']:.1f} img/s" + (f", {r['peak_mem_gib']:.1f} GiB" if r.get("peak_mem_gib") else "")
        lines.append(f"| {r['name']} | {r['batch']} | {mode} | {r['ms']:.3f} | {per} | {f(r.get('tflops'))} | "
                     f"{f(r.get('pct_peak_table'), '{:.1f}')} | {f(r.get('pct_peak_measured'), '{:.1f}')} |")
    for name, what in (("profile", "a one-step forward"), ("profile_train", "a training iteration")):
        prof = next((r for r in d.get("items", []) if r["name"] == name and r["status"] == "ok"), None)
        if prof:
            lines += ["", f"Where {what} spends its time (torch.profiler, batch {prof['batch']}, {prof['precision']}, "
                          f"{memory_format(prof, d)}): " + prof["summary"] + "."]
    s = d.get("summary") or {}
    if s:
        lines.append("")
        if "diffusion_vs_one_step_per_slice" in s:
            lines.append(f"One step vs many: the diffusion baseline (20 Heun steps, 1 member) costs "
                         f"{s['diffusion_vs_one_step_per_slice']:.1f}x the CTS one-step time per slice, its 5-member "
                         f"ensemble {s['diffusion_ensemble_vs_one_step_per_slice']:.1f}x"
                         + (f"; CTS 2-step costs {s['two_step_vs_one_step']:.2f}x." if "two_step_vs_one_step" in s else "."))
        sp, ref = s.get("speedup_vs_reference", {}), d.get("reference", {})
        if d.get("comparable_to_reference"):
            lines.append(f"Against the released code (reference: {ref.get('ms_per_slice_b16')} ms/slice at batch 16, "
                         f"{ref.get('ms_b1')} ms at batch 1, {ref.get('ms_train_step_b8')} ms per training step at batch 8): "
                         f"their time / ours (above 1 = faster) is {f(sp.get('b16_ms_per_slice'))} at batch 16, "
                         f"{f(sp.get('b1_latency'))} at batch 1 and {f(sp.get('train_step_b8'))} for training.")
            met = s.get("targets_met", {})
            lines.append("Targets: " + ", ".join(f"{k} {'met' if v else ('not met' if v is not None else 'n/a')}"
                                                 for k, v in met.items()) + ".")
    return lines + [""]


# ---------------------------------------------------------------------------------------- quality
GRID_LABEL = {"native": "scored on the native grid", "model": "scored at the model's resolution"}


def quality_group_key(d: dict) -> tuple:
    return (d.get("device_kind"), d.get("device_name"), d.get("preset"), d.get("steps"), d.get("batch_size"), d.get("tag", ""),
            n_seeds(d), d.get("grid"))


def n_seeds(d: dict) -> int:
    """How many seeds each row of a quality file was run with (1 for files from before --seeds)."""
    return len(d.get("seeds") or [d.get("seed", 0)])


def seeds_note(group: list[tuple[str, dict]], with_list: bool = False) -> str:
    """ "mean ± std over 3 seeds" (with_list: "... 3 seeds (0, 1, 2)") for multi-seed files; "" for single-seed ones."""
    k = n_seeds(group[0][1])
    if k <= 1:
        return ""
    lists = {tuple(d["seeds"]) for _, d in group}
    listed = f" ({', '.join(map(str, next(iter(lists))))})" if with_list and len(lists) == 1 else ""
    return f"mean ± std over {k} seeds{listed}"


def grid_note(d: dict) -> str:
    """Where the file was scored (files from before native-grid scoring have no `grid`: model resolution).

    The grid each summary records it was scored on wins over the one asked for (a dataset without
    native masks is scored at the model's resolution even when the native grid was asked for).
    """
    if not d.get("grid"):
        return GRID_LABEL["model"]
    used = sorted({s["grid"] for r in d["rows"] for s in (r.get("outputs") or {}).values() if s.get("grid")}) or [d["grid"]]
    return " and ".join(GRID_LABEL.get(g, f"scored on the {g} grid") for g in used)


def score_cells(r: dict, out: str, level: str, seeds: int) -> tuple[str, str]:
    """(Dice, IoU) cells in %: the across-seed mean ± std where the row has several seeds, else mean ± std over the split."""
    across = (r.get("across_seeds") or {}).get(out)
    if across and across["n"] > 1:
        iou = across.get("iou_mean")
        dice, iou_cell = f"{100 * across['dice_mean']:.1f} ± {100 * across['dice_std']:.1f}", f(iou and 100 * iou, "{:.1f}")
        n = across["n"]
    else:
        (dice, iou_cell), n = split_cells(r["outputs"][out][level]), 1
    if seeds > 1 and n != seeds:
        dice += f" ({n} seed{'s' if n != 1 else ''})"
    return dice, iou_cell


def split_cells(s: dict) -> tuple[str, str]:
    """(Dice, IoU) cells in % of one summary level: mean ± std over the split, and the mean IoU."""
    dm, ds, iou = s["dice"]["mean"], s["dice"]["std"], s["iou"]["mean"]
    return ("n/a" if dm is None else f"{100 * dm:.1f} ± {100 * ds:.1f}"), f(iou and 100 * iou, "{:.1f}")


def truncation_notes(d: dict) -> str:
    """". CTS-M: training cut short at 120 steps" for every row (and seed) the time budget cut short."""
    notes = ""
    for r in d["rows"]:
        cut = [e for e in r.get("per_seed", []) if e.get("train", {}).get("truncated")]
        if len(r.get("per_seed", [])) > 1:
            notes += "".join(f". {r['label']} seed {e['seed']}: training cut short at {e['train']['steps']} steps" for e in cut)
        elif r.get("train", {}).get("truncated"):
            notes += f". {r['label']}: training cut short at {r['train']['steps']} steps"
    return notes


def bare_recipe(train_config: dict) -> str:
    """The recipe a file's bare CTS rows (`cts_m`, not `cts_m@paper`) trained with, read off its TrainConfig
    (fields a file predates take TrainConfig's defaults): the paper's CT, or the anchor's beta and logit scale."""
    cfg = train_config_from_dict(train_config)
    a = cfg.anchor
    if a.weight == 0:
        return "paper's CT" if a.sigma_max_share == 0 else f"CT, sigma_max share {a.sigma_max_share:g}"
    return (f"anchored: beta {a.weight:g} {a.loss} on logits {a.logit_scale:g} f, "
            f"sigma_max share {a.sigma_max_share:g}, L_S {cfg.seg_loss}")


def ct_s1(d: dict):
    """The CT curriculum's s1 of a result file's TrainConfig ('?' for files without one)."""
    return train_config_from_dict(d["train_config"]).ct.s1 if "train_config" in d else "?"


def quality_section(group: list[tuple[str, dict]]) -> list[str]:
    first = group[0][1]
    datasets = [(name, d) for name, d in group]
    bare = any(r["row"].startswith("cts_") and "@" not in r["row"] for _, d in group for r in d["rows"])
    recipe = f"; CTS rows: {bare_recipe(first['train_config'])}" if bare and "train_config" in first else ""
    head = (f"#### Quality: preset `{first['preset']}`, {first['steps']} steps x batch {first['batch_size']} per row "
            f"(lr {first['lr']:g}, CT curriculum s1 {ct_s1(first)}, EMA {first['ema_rate']:.4g}"
            f"{recipe}) on {where(first)}")
    cpu_note = (" (CPU benchmark: small networks, short budgets)" if n_seeds(first) > 1 else
                " (CPU smoke run: tiny network and budget, a pipeline check)")
    notes = "Sources: " + ", ".join(f"`benchmarks/results/{n}`" for n, _ in datasets) \
        + (cpu_note if first.get("device_kind") != "cuda" else "")
    if first.get("parallel_rows"):
        notes += (". Rows were trained at the same time, one process each, on the one device "
                  "(quality.py --parallel-rows), each for the same number of steps")
    notes += "".join(truncation_notes(d) for _, d in datasets)
    seeds, over = n_seeds(first), seeds_note(group)
    split = " / ".join(f"{'patients' if d['level'] == 'per_volume' else 'images'} ({DATA_NAME.get(d['data_kind'], d['data_kind'])}, "
                       f"n = {d['test_cases'] if d['level'] == 'per_volume' else d['test_items']})" for _, d in datasets)
    caption = (f"Dice and IoU in %, {seeds_note(group, with_list=True)} of the mean over the test split's {split}: "
               "every row trained and scored once per seed; IoU is the mean over the seeds") if over else \
        f"Dice and IoU in %, mean ± std over the test split's {split}"
    grid = grid_note(first)
    lines = [head, "", notes + ".", "", caption + (f"; {grid}" if grid else "") + ".", ""]
    cols = []
    for _, d in datasets:
        label = f"{DATA_NAME.get(d['data_kind'], d['data_kind'])} {LEVEL_LABEL[d['level']]}"
        cols += [label + (f", {over}" if over else ""), "IoU"]
    lines.append("| row | output | NFE per image | " + " | ".join(cols) + " |")
    lines.append("|---" * (3 + len(cols)) + "|")
    keys: list[tuple[str, str]] = []
    info: dict = {}
    for _, d in datasets:
        for r in d["rows"]:
            for out in (r.get("outputs") or {"-": None}):
                k = (r["row"], out)
                if k not in keys:
                    keys.append(k)
                    oi = (r.get("outputs_info") or {}).get(out, {})
                    info[k] = (r["label"], oi.get("desc", r.get("status", "")), oi.get("nfe", ""))
    order = {row: i for i, row in enumerate(ROW_ORDER)}

    def row_rank(row: str) -> tuple[int, int]:
        base, _, recipe = row.partition("@")
        return order.get(base, len(order)), RECIPE_ORDER.index(recipe or None) if (recipe or None) in RECIPE_ORDER else 9
    keys.sort(key=lambda k: row_rank(k[0]))   # stable: outputs keep their order within a row
    for k in keys:
        label, desc, nfe = info[k]
        cells = []
        for _, d in datasets:
            r = next((x for x in d["rows"] if x["row"] == k[0]), None)
            if r is None or not r["status"].startswith("ok") or k[1] not in r.get("outputs", {}):
                status = "" if r is None else r["status"].split(":")[0]
                cells += [status or "-", ""]
                continue
            cells += list(score_cells(r, k[1], d["level"], seeds))
        lines.append(f"| {label} | {desc} | {nfe if nfe != 0 else '0 (h only)'} | " + " | ".join(cells) + " |")
    ceiling = ceiling_line(datasets)
    return lines + ([ceiling] if ceiling else []) + [""] + cost_table(datasets, [k[0] for k in keys], info)


def row_cost(r: dict) -> dict:
    """What one row cost to train: params, GFLOP per training step (files from quality.py with cost counting),
    training seconds per run (CPU seconds where recorded, else wall), and the steps per seed."""
    cost = r.get("cost") or {}
    runs = [e["train"] for e in r.get("per_seed", []) if e.get("train", {}).get("steps")] or \
        ([r["train"]] if r.get("train", {}).get("steps") else [])
    cpu = "train_cpu_seconds_mean" in cost
    seconds = cost.get("train_cpu_seconds_mean") if cpu else \
        (statistics.fmean(t["seconds"] for t in runs) if runs and all("seconds" in t for t in runs) else None)
    return {"params": cost.get("params", r.get("params")), "gflop": (cost.get("gflop_per_step") or {}).get("total"),
            "seconds": seconds, "clock": "CPU" if cpu else "wall", "steps": sorted({t["steps"] for t in runs})}


def cost_table(datasets: list[tuple[str, dict]], rows: list[str], info: dict) -> list[str]:
    """Each row's cost beside the quality table: parameters, GFLOP per training step and training seconds."""
    if not any(row_cost(r)["params"] for _, d in datasets for r in d["rows"]):
        return []
    lines = ["What each row cost to train, per seed (GFLOP counted by torch.utils.flop_counter on one real training "
             "step, where the file has it; seconds of the training alone, CPU time of the process where recorded):", "",
             "| row | data | parameters | GFLOP per training step | steps | training seconds |", "|---|---|---|---|---|---|"]
    for row in dict.fromkeys(rows):
        label = next(v[0] for k, v in info.items() if k[0] == row)
        for _, d in datasets:
            r = next((x for x in d["rows"] if x["row"] == row and x["status"].startswith("ok")), None)
            if r is None:
                continue
            c = row_cost(r)
            lines.append(f"| {label} | {DATA_NAME.get(d['data_kind'], d['data_kind'])} | {f(c['params'], '{:,}', '-')} | "
                         f"{f(c['gflop'], '{:.2f}', '-')} | {'/'.join(map(str, c['steps'])) or '-'} | "
                         + (f"{c['seconds']:.0f} ({c['clock']})" if c["seconds"] else "-") + " |")
    return lines + [""]


def ceiling_line(datasets: list[tuple[str, dict]]) -> str:
    """The table row of the expert masks resized to the model grid and back (quality.py's `ceiling`), if scored."""
    first = next((d["ceiling"] for _, d in datasets if d.get("ceiling")), None)
    if first is None:
        return ""
    cells = []
    for _, d in datasets:
        c = d.get("ceiling")
        if not c:
            cells += ["-", ""]
            continue
        cells += list(split_cells(next(iter(c["outputs"].values()))[d["level"]]))
    return f"| {first['label']} | {first['desc']}; no training, ± over the test split | - | " + " | ".join(cells) + " |"


def ablation_section(group: list[tuple[str, dict]]) -> list[str]:
    """Runs tagged "ablation: ..." that differ only in their training settings: one row per run."""
    first = group[0][1]
    level = first["level"]
    title = first["tag"].split(":", 1)[1].strip()
    extra = "".join(f", {note}" for note in (seeds_note(group), grid_note(first)) if note)
    lines = [f"#### {title[:1].upper() + title[1:]}: {DATA_NAME.get(first['data_kind'], first['data_kind'])}, "
             f"preset `{first['preset']}`, {first['steps']} steps x batch {first['batch_size']}, {LEVEL_LABEL[level]} "
             f"(test split{extra}) on {where(first)}", "",
             "| row | lr | CT curriculum s1 | one-step Dice | 1 step x E Dice | aux head Dice | source |", "|---|---|---|---|---|---|---|"]
    key = lambda item: (ct_s1(item[1]), item[1]["lr"])  # noqa: E731
    for name, d in sorted(group, key=key):
        for r in d["rows"]:
            outs = r.get("outputs") or {}
            cell = lambda o: (score_cells(r, o, level, n_seeds(d))[0]  # noqa: E731
                              if o in outs and outs[o][level]["dice"]["mean"] is not None else "-")
            lines.append(f"| {r['label']} | {d['lr']:g} | {ct_s1(d)} | {cell('one_step')} | "
                         f"{cell('ensemble')} | {cell('aux_head')} | `{name}` |")
    return lines + [""]


def render(results: list[tuple[str, dict]]) -> str:
    lines = [START, "<!-- generated by benchmarks/readme_results.py from benchmarks/results/*.json; do not edit by hand -->", ""]
    if not results:
        return "\n".join(lines + ["No benchmark results committed yet.", "", END])
    quality = [(n, d) for n, d in results if d["benchmark"] == "quality" and not d.get("tag", "").startswith("ablation:")]
    ablations = [(n, d) for n, d in results if d["benchmark"] == "quality" and d.get("tag", "").startswith("ablation:")]
    speed = [(n, d) for n, d in results if d["benchmark"] == "speed"]
    if quality:
        lines += ["### Quality (Table 1 protocol: hard masks, fixed thresholds, test split)", ""]
        groups: dict = {}
        for n, d in quality:
            groups.setdefault(quality_group_key(d), []).append((n, d))
        for group in groups.values():
            lines += quality_section(group)
    if ablations:
        groups = {}
        for n, d in ablations:
            key = (d["tag"], d.get("device_name"), d["preset"], d["steps"], d["data_kind"], n_seeds(d), d.get("grid"))
            groups.setdefault(key, []).append((n, d))
        for group in groups.values():
            lines += ablation_section(group)
    if speed:
        lines += ["### Speed", ""]
        lines += speed_targets(speed)
        for n, d in speed:
            lines += speed_section(n, d)
    return "\n".join(lines).rstrip() + "\n\n" + END


# ---------------------------------------------------------------------------------- the README's blocks
HEADLINE = ("<!-- headline:start -->", "<!-- headline:end -->")
TUTORIAL = ("<!-- tutorial:start -->", "<!-- tutorial:end -->")
HEADLINE_FILES = ("quality_cpu_recipe_ddti.json", "quality_cpu_recipe_lgg.json")
HEADLINE_ROWS = (("cts_m@anchored", "one_step"), ("cts_m@paper", "one_step"), ("supervised", "unet"),
                 ("supervised_same_seconds", "unet"))
TIMING_FILE = "tutorial_quick_cpu.json"
GENERATED = "<!-- generated by benchmarks/readme_results.py from benchmarks/results/*.json; do not edit by hand -->"


def headline_cell(d: dict, row: str, out: str) -> tuple[dict | None, str, str]:
    """(the row's record, its Dice cell, its training-seconds cell) in one headline file."""
    r = next((x for x in d["rows"] if x["row"] == row and x["status"].startswith("ok")), None)
    if r is None or out not in (r.get("outputs") or {}):
        return None, "-", "-"
    c = row_cost(r)
    steps = "/".join(map(str, c["steps"]))
    seconds = f"{c['seconds']:.0f} {c['clock']} s, {steps} steps" if c["seconds"] else "-"
    return r, score_cells(r, out, d["level"], n_seeds(d))[0], seconds


def equal_compute_sentence(files: list[dict]) -> str:
    """What CTS-M's one-step sample buys at equal steps and at equal training seconds, computed from the headline
    files: the Dice differences, how many more steps the U-Net took, and how much of CTS-M's time it really used."""
    steps, seconds = [], []
    for d in files:
        rows = {r["row"]: r for r in d["rows"]}
        cts, sup, same = rows.get("cts_m@anchored"), rows.get("supervised"), rows.get("supervised_same_seconds")
        if not (cts and sup and same):
            return ""
        name = DATA_NAME.get(d["data_kind"], d["data_kind"]).split(" (")[0]
        dice = lambda r, o: r["across_seeds"][o]["dice_mean"]  # noqa: E731
        steps.append(f"{100 * (dice(cts, 'one_step') - dice(sup, 'unet')):+.1f} ({name})")
        c, u = row_cost(cts), row_cost(same)
        more = statistics.fmean(u["steps"]) / statistics.fmean(c["steps"])
        used = f", {100 * u['seconds'] / c['seconds']:.0f}% of CTS-M's seconds" if c["seconds"] and u["seconds"] else ""
        seconds.append(f"{100 * (dice(cts, 'one_step') - dice(same, 'unet')):+.1f} ({name}; the U-Net trained "
                       f"{more:.0f}x the steps{used})")
    return ("CTS-M's one-step sample minus the supervised U-Net, in Dice points: "
            f"{', '.join(steps)} at equal steps; {', '.join(seconds)} at equal compute, the U-Net given CTS-M's "
            "training seconds (its step count set from a timing probe before training).")


def render_headline(results: list[tuple[str, dict]]) -> str:
    """The README's one small table: one-step Dice of CTS-M (both recipes) and the supervised U-Net at equal steps
    and at equal training seconds, mean ± std over the seeds, with each row's cost, from the HEADLINE_FILES runs."""
    files = [d for name in HEADLINE_FILES for n, d in results if n == name]
    lines = [HEADLINE[0], GENERATED, ""]
    if len(files) != len(HEADLINE_FILES):
        return "\n".join(lines + ["No headline results committed yet.", "", HEADLINE[1]])
    head = " | ".join(f"{DATA_NAME.get(d['data_kind'], d['data_kind'])} {LEVEL_LABEL[d['level']]} "
                      f"({seeds_note([('', d)])}) | training per seed" for d in files)
    lines += [f"| model (preset `{files[0]['preset']}`, CPU) | NFE | GFLOP per training step | {head} |",
              "|---|---|---|" + "---|---|" * len(files)]
    for row, out in HEADLINE_ROWS:
        cells, label, nfe, gflop = [], None, "", None
        for d in files:
            r, dice, seconds = headline_cell(d, row, out)
            if r is not None:
                label, nfe = r["label"], (r.get("outputs_info") or {}).get(out, {}).get("nfe", nfe)
                gflop = gflop or row_cost(r)["gflop"]
            cells += [dice, seconds]
        if label is None:
            continue
        lines.append(f"| {label} | {nfe if nfe != 0 else '0 (h only)'} | {f(gflop, '{:.1f}', '-')} | "
                     + " | ".join(cells) + " |")
    sources = ", ".join(f"`benchmarks/results/{n}`" for n in HEADLINE_FILES)
    sentence = equal_compute_sentence(files)
    lines += ["", f"Dice in %, {grid_note(files[0])}; one thread; sources: {sources}. "
                  + (sentence + " " if sentence else "")
                  + "Every table, with how to read it: [docs/results.md](docs/results.md).", "", HEADLINE[1]]
    return "\n".join(lines)


def notebook_title(path: Path) -> str:
    """The notebook's title (its first markdown line, without the number) as plain text."""
    first = json.loads(path.read_text())["cells"][0]
    title = "".join(first["source"]).splitlines()[0].lstrip("# ").strip()
    return title.split("·", 1)[-1].strip()


def render_tutorial(timing: dict | None, notebooks: Path) -> str:
    """The README's tutorial map: notebook, title, and the quick profile's minutes on a 2-core CPU (CPU time,
    which one torch thread turns into wall time on an idle machine; the measurement's wall time beside it)."""
    cpu = (timing or {}).get("cpu_seconds", {})
    lines = [TUTORIAL[0], GENERATED, "", "| notebook | what it teaches | minutes (quick profile, 1 CPU thread) |", "|---|---|---|"]
    for path in sorted(notebooks.glob("[0-9][0-9]_*.ipynb")):
        minutes = f"{cpu[path.stem] / 60:.1f}" if path.stem in cpu else "not measured"
        lines.append(f"| [{path.stem}](notebooks/{path.name}) | {notebook_title(path)} | {minutes} |")
    if timing:
        lines += ["", f"CPU time (user + sys) measured by `python benchmarks/tutorial_timing.py` on {timing['cpu']} "
                      f"({timing['cores']} cores), {timing['date'][:10]}: {timing['total_seconds'] / 60:.1f} minutes in all, "
                      "about the wall time on an idle machine; that run's wall time was "
                      f"{timing['total_wall_seconds'] / 60:.1f} minutes at a load average of {timing['load_before']:.1f} to "
                      f"{timing['load_after']:.1f}."]
    return "\n".join(lines + ["", TUTORIAL[1]])


def load_timing(folder: Path) -> dict | None:
    path = folder / TIMING_FILE
    return json.loads(path.read_text()) if path.is_file() else None


def splice(text: str, block: str, markers: tuple[str, str] = (START, END)) -> str:
    """``text`` with the block between the markers replaced (markers appended if missing)."""
    start, end = markers
    if start in text and end in text and text.index(start) < text.index(end):
        head, rest = text.split(start, 1)
        _, tail = rest.split(end, 1)
        return head + block + tail
    sep = "" if not text or text.endswith("\n\n") else ("\n" if text.endswith("\n") else "\n\n")
    return text + sep + block + "\n"


def updated_files(args) -> dict[Path, tuple[str, str]]:
    """{path: (current text, generated text)} for docs/results.md and README.md."""
    folder = Path(args.results)
    results = load_results(folder)
    page, readme = Path(args.page), Path(args.readme)
    out = {}
    current = page.read_text() if page.exists() else ""
    out[page] = (current, splice(current, render(results)))
    current = readme.read_text() if readme.exists() else ""
    text = splice(current, render_headline(results), HEADLINE)
    out[readme] = (current, splice(text, render_tutorial(load_timing(folder), Path(args.notebooks)), TUTORIAL))
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=HELP_FMT)
    p.add_argument("--page", default=str(ROOT / "docs" / "results.md"), help="the full results page to update")
    p.add_argument("--readme", default=str(ROOT / "README.md"), help="the landing page (headline table, tutorial map)")
    p.add_argument("--results", default=str(ROOT / "benchmarks" / "results"), help="folder of result JSON files")
    p.add_argument("--notebooks", default=str(ROOT / "notebooks"), help="folder of the numbered notebooks")
    p.add_argument("--check", action="store_true", help="only check; exit 1 if a file is out of date")
    args = p.parse_args(argv)
    stale = 0
    for path, (current, updated) in updated_files(args).items():
        if current == updated:
            print(f"{path.name} is up to date")
        elif args.check:
            stale += 1
            diff = difflib.unified_diff(current.splitlines(), updated.splitlines(), path.name, "generated", lineterm="", n=1)
            print(f"{path} is out of date; run python benchmarks/readme_results.py\n" + "\n".join(list(diff)[:40]),
                  file=sys.stderr)
        else:
            path.write_text(updated)
            print(f"updated {path}")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
