"""Retrain a shipped pretrained checkpoint from scratch, score it on its test split, write its model card.

    python scripts/build_pretrained.py lgg-tiny64 --data-root "$CTS_DATA_ROOT"           # retrain + card
    python scripts/build_pretrained.py ddti-tiny64 --data-root "$CTS_DATA_ROOT" --check  # rescore the committed file
    python scripts/build_pretrained.py ddti-tiny64 --data-root "$CTS_DATA_ROOT" --card   # + lesion-wise scores, new card

A build trains the named recipe (RECIPES below: preset, data set, steps, seed) on the full set's
train split with `ctslib.train.train`, exports the EMA weights in half precision
(`ctslib.pretrained.export_compact`), scores *that exported file* on the test split with the
evaluation protocol (docs/evaluation.md: hard masks, fixed thresholds, the files' own grid, per
patient for LGG, per image for DDTI, bootstrap CIs), and writes `ctslib/weights/<name>.pt`, its
registry entry (SHA-256, scores, command, run time) and the model card `ctslib/weights/<name>.md`.
`--check` rescores the committed file the same way and fails if any score differs from the
registry's (the model card is generated from the registry, so it cannot drift either). `--card` rescores
the committed file without retraining, refuses if its Dice/IoU/HD95 differ from the registry's, and
writes the lesion-wise scores (docs/evaluation.md section 12) into its registry entry and its card.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from ctslib.cli import HELP_FMT  # noqa: E402
from ctslib.config import flat_fields, override, preset, train_config_from_dict, with_variant  # noqa: E402
from ctslib.data import open_dataset, open_for_preset  # noqa: E402
from ctslib.evaluate import EvalOptions, evaluate, headline_level  # noqa: E402
from ctslib.pretrained import (WEIGHTS_DIR, PretrainedError, export_compact, load_pretrained, pretrained_entry,  # noqa: E402
                               write_registry_entry)
from ctslib.checkpoint import build_model_from_checkpoint  # noqa: E402
from ctslib.model import count_parameters  # noqa: E402
from ctslib.train import RunOptions, train  # noqa: E402


@dataclass(frozen=True)
class Recipe:
    """What a pretrained checkpoint is: data set, preset, variant, run length, seed, multistep level."""
    kind: str            # lgg or ddti (a folder of the data root)
    preset: str
    variant: str
    steps: int
    seed: int
    tau: float           # the 2-step sampler's second level, chosen on the val split (docs/method.md section 9)
    data_name: str
    licence: str
    citation: str
    train_set: tuple[str, ...] = ()   # TrainConfig overrides on top of the preset ("FIELD=VALUE", config.override)

    @property
    def level(self) -> str:
        """per_volume (LGG: per patient) or per_slice (DDTI: per image), as the evaluation protocol says."""
        return headline_level(self.kind)

    def spec(self, data_root: Path) -> str:
        return f"{self.kind}:{data_root / self.kind}"


LGG_LICENCE = "CC BY-NC-SA 4.0 (the LGG Segmentation Dataset, from TCIA's TCGA-LGG collection)"
DDTI_LICENCE = "DDTI open-access research database: non-commercial research and teaching use, with citation"
# The 64 px checkpoints keep their names (what the tutorial, the README and the CLI examples load) and train the
# tiny64-lowres-g preset: tiny64's image encoder h with the right-sized consistency head g, whose step costs about
# an eighth of tiny64's. lgg-tiny64: a CPU budget of about an hour (one thread) instead of 400 tiny64 steps; the EMA
# averages the last ~1000 steps of the longer run.
LONG_RUN = ("ema_rate=0.999",)
# ddti-tiny64: the 64 px setting of the cost sweep's longer budgets (benchmarks/results/cost_sweep/README.md),
# whose CTS-M one-step sample matched the supervised U-Net at equal CPU seconds on DDTI val (89.0 +- 0.2 over
# 3 seeds, 800 steps): the teacher on the online h's signals, and quality.py's EMA rate for 800 steps. Shipped
# because its val Dice (88.8) beat the 20,000-step build's (88.5), the rule fixed before its test split was scored.
SHORT_SHARED = ("ema_rate=0.9875", "ct.teacher_signals=online")
RECIPES = {
    "lgg-tiny64": Recipe("lgg", "tiny64-lowres-g", "cts_m", 20_000, 0, 0.05, "LGG brain MRI (FLAIR abnormality)",
                         LGG_LICENCE, "Buda, Saha, Mazurowski, Computers in Biology and Medicine 109 (2019) 218-225",
                         LONG_RUN),
    "ddti-tiny64": Recipe("ddti", "tiny64-lowres-g", "cts_m", 800, 0, 0.05, "DDTI thyroid ultrasound (nodule crops)",
                          DDTI_LICENCE, "Pedraza et al., Proc. SPIE 9287, 92870W (2015)", SHORT_SHARED),
}
OUTPUTS = ("one_step", "multistep", "ensemble", "aux_head")


def scores(model, test_set, recipe: Recipe, mask_encoding: str) -> dict:
    """Headline scores of every output on the test split: Dice, IoU, HD95 (mean, std, 95% CI where given)."""
    opts = EvalOptions(outputs=OUTPUTS, levels=(recipe.tau,), members=5, seed=0, hd95=True, n_bootstrap=1000,
                       grid="native")
    results = evaluate(model, test_set, mask_encoding, opts, "cpu")
    out = {}
    for name, r in results.items():
        block = r[recipe.level]
        # Per image (DDTI) every image is its own case, so the per-case Dice/IoU carry the bootstrap CIs;
        # HD95 stays the 2-D per-image one (a one-slice "volume" would count every voxel as surface).
        dice_iou = r["per_volume"] if recipe.level == "per_slice" and r["per_volume"]["n"] == block["n"] else block
        out[name] = {m: {k: src[m][k] for k in ("mean", "std", "ci95") if k in src[m]}
                     for m, src in (("dice", dice_iou), ("iou", dice_iou), ("hd95", block))}
        out[name]["n"] = block["n"]
        out[name]["lesion_wise"] = r["lesion_wise"]      # per case: per patient (LGG) or per image (DDTI)
    return out


LESION_COUNTS = ("lesions", "detected", "missed", "false_positives", "small_lesions", "n", "dilation", "min_size")


def _mean_differs(label: str, recorded: dict, found: dict) -> list[str]:
    a, b = recorded["mean"], found["mean"]
    return [f"{label}: card {a:.4f}, rescored {b:.4f}"] if abs(a - b) > 1e-4 * max(1.0, abs(a)) else []


def score_differences(recorded: dict, found: dict, lesion_wise: bool = True) -> list[str]:
    """What differs between the registry's scores and fresh ones (means to 1e-4, counts exactly)."""
    problems = []
    for output, metrics in recorded.items():
        new = found[output]
        for metric, stats in metrics.items():
            if metric == "n" and new["n"] != stats:
                problems.append(f"{output} n: card {stats}, rescored {new['n']}")
            elif metric == "lesion_wise" and lesion_wise:
                problems += [f"{output} lesion-wise {k}: card {stats[k]}, rescored {new[metric][k]}"
                             for k in LESION_COUNTS if stats[k] != new[metric][k]]
                problems += _mean_differs(f"{output} lesion-wise Dice", stats["dice"], new[metric]["dice"])
            elif metric not in ("n", "lesion_wise"):
                problems += _mean_differs(f"{output} {metric}", stats, new[metric])
    return problems


def rescored(name: str, recipe: Recipe, data_root: Path) -> tuple[dict, dict]:
    """(registry entry, fresh scores) of the committed checkpoint on its test split."""
    entry = pretrained_entry(name)
    model, info = load_pretrained(name)
    test_set = open_dataset(recipe.spec(data_root), "test", model.cfg.image_size)
    return entry, scores(model, test_set, recipe, info["train_cfg"].mask_encoding)


def build(name: str, recipe: Recipe, data_root: Path, threads: int) -> dict:
    spec = recipe.spec(data_root)
    mcfg, tcfg, (train_set,) = open_for_preset(spec, recipe.preset, ["train"], recipe.variant)
    tcfg = override(replace(tcfg, steps=recipe.steps, seed=recipe.seed), list(recipe.train_set))
    work = Path(tempfile.mkdtemp(prefix=f"pretrained-{name}-"))
    try:
        t0, cpu0 = time.perf_counter(), time.process_time()
        run = RunOptions(out=str(work), log_every=max(recipe.steps // 50, 1), eval_every=0, ckpt_every=max(recipe.steps // 10, 1),
                         device="cpu", progress=True)
        train(with_variant(mcfg, recipe.variant), tcfg, train_set, None, run, data_spec=recipe.kind)
        seconds, cpu_seconds = time.perf_counter() - t0, time.process_time() - cpu0
        dest = WEIGHTS_DIR / f"{name}.pt"
        packed = export_compact(work / "ckpt.pt", dest, data_note=recipe.kind)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    model, info = build_model_from_checkpoint(dest, "ema")
    test_set = open_dataset(spec, "test", mcfg.image_size)
    val = evaluate(model, open_dataset(spec, "val", mcfg.image_size), info["train_cfg"].mask_encoding,
                   EvalOptions(outputs=("one_step", "aux_head"), seed=0, hd95=False, n_bootstrap=0, grid="native"), "cpu")
    entry = {
        "file": dest.name, "sha256": packed["sha256"], "bytes": packed["bytes"], "preset": recipe.preset,
        "variant": recipe.variant, "data": recipe.kind, "data_name": recipe.data_name, "in_channels": train_set.in_channels,
        "train_items": len(train_set), "test_items": len(test_set),
        "test_cases": len({test_set.meta(i)["case"] for i in range(len(test_set))}), "level": recipe.level, "tau": recipe.tau, "steps": recipe.steps,
        "seed": recipe.seed, "train_config": asdict(info["train_cfg"]), "model_config": asdict(model.cfg),
        "params": count_parameters(model), "train_seconds": round(seconds, 1),
        "train_cpu_seconds": round(cpu_seconds, 1), "threads": threads, "device": "cpu", "torch": torch.__version__, "date": time.strftime("%Y-%m-%d"),
        "licence": recipe.licence, "citation": recipe.citation,
        "command": f"python scripts/build_pretrained.py {name} --data-root $CTS_DATA_ROOT --threads {threads}",
        "val_dice": {output: r[recipe.level]["dice"]["mean"] for output, r in val.items()},
        "scores": scores(model, test_set, recipe, info["train_cfg"].mask_encoding),
    }
    write_registry_entry(name, entry)
    return entry


def check(name: str, recipe: Recipe, data_root: Path) -> list[str]:
    """Rescore the committed checkpoint; the differences from its registry entry (empty = it matches)."""
    entry, found = rescored(name, recipe, data_root)
    problems = []
    card = WEIGHTS_DIR / f"{name}.md"
    if not card.is_file() or card.read_text() != model_card(name, entry):
        problems.append(f"model card {card} is missing or differs from the one its registry entry generates")
    problems += [f"{output}: no lesion-wise scores (write them with --card)"
                 for output, metrics in entry["scores"].items() if "lesion_wise" not in metrics]
    return problems + score_differences(entry["scores"], found)


def with_lesion_scores(name: str, recipe: Recipe, data_root: Path) -> dict:
    """Rescore the committed file (no retraining) and add its lesion-wise scores to its registry entry.

    Refuses when the rescored Dice/IoU/HD95 differ from the registry's: then the card would mix two
    evaluations (`--rescore` rewrites them all)."""
    entry, found = rescored(name, recipe, data_root)
    problems = score_differences(entry["scores"], found, lesion_wise=False)
    if problems:
        raise PretrainedError(f"{name}: rescored scores differ from the registry's ({'; '.join(problems)}); "
                              "rewrite them all with --rescore")
    entry = {**entry, "scores": {o: {**s, "lesion_wise": found[o]["lesion_wise"]} for o, s in entry["scores"].items()}}
    write_registry_entry(name, entry)
    return entry


def rescore(name: str, recipe: Recipe, data_root: Path) -> dict:
    """Score the committed file again and rewrite its registry scores (same weights, same SHA-256)."""
    entry, found = rescored(name, recipe, data_root)
    entry = {**entry, "tau": recipe.tau, "level": recipe.level, "scores": found}
    write_registry_entry(name, entry)
    return entry


def _pct(stats: dict) -> str:
    ci = stats.get("ci95")
    return f"{100 * stats['mean']:.1f}" + (f" [{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]" if ci else "")


def _mm(stats: dict) -> str:
    ci = stats.get("ci95")
    return f"{stats['mean']:.1f}" + (f" [{ci[0]:.1f}, {ci[1]:.1f}]" if ci else "")


def preset_drift(entry: dict) -> dict[str, tuple]:
    """{field: (value the checkpoint was trained with, the preset's value today)} for the training fields that differ,
    besides the run's own steps and seed."""
    _, today = preset(entry["preset"])
    then, now = flat_fields(train_config_from_dict(entry["train_config"])), flat_fields(today)
    return {k: (v, now[k]) for k, v in then.items() if k not in ("steps", "seed") and v != now[k]}


def lesion_section(entry: dict, labels: dict[str, str]) -> str:
    """The card's lesion-wise table (docs/evaluation.md section 12), from the registry entry; empty if it has none."""
    scored = {o: s["lesion_wise"] for o, s in entry["scores"].items() if s.get("lesion_wise")}
    if not scored:
        return ""
    first = next(iter(scored.values()))
    case, grid, unit = (("patient", "3-D, 26-connected", "voxels") if entry["level"] == "per_volume"
                        else ("image", "2-D, 8-connected", "pixels"))
    rows = "\n".join(f"| {labels[o]} | {_pct(x['dice'])} | {x['lesions']} | {x['detected']} | {x['missed']} | "
                     f"{x['false_positives']} |" for o, x in scored.items())
    return f"""
## Lesion-wise scores

Per {case} ({first['n']} cases), as in the BraTS 2023 lesion-wise protocol (docs/evaluation.md section 12):
the expert mask's connected components ({grid}), those within {first['dilation']} steps of each other counted as
one lesion; a lesion is detected when a predicted component meets it (dilated {first['dilation']} times) and
scores the Dice of those components, a missed lesion scores 0, and every predicted component that meets
no lesion is a false positive scoring 0; lesions of {first['min_size']} {unit} or fewer are left out
({first['small_lesions']} here). Lesion-wise Dice = the lesions' Dice summed / (lesions + false positives)
per case; mean over cases with a 95% bootstrap CI. Counts are summed over the test split.

| output | lesion-wise Dice % | lesions | detected | missed | false positives |
|---|---|---|---|---|---|
{rows}
"""


def cost_line(entry: dict) -> str:
    """The card's parameters and the val Dice the build was checked on (builds since the registry held them)."""
    parts = []
    if "params" in entry:
        p = entry["params"]
        parts.append(f"- Parameters: {p['total']:,} (consistency head g {p['denoiser']:,}, image encoder h "
                     f"{p['image_encoder']:,}, fusion {p['fusion']:,}). What a training step costs against the "
                     "supervised U-Net's, and what that U-Net scores given CTS-M's CPU seconds: docs/method.md "
                     "section 2.7 and docs/results.md (equal compute).\n")
    if "val_dice" in entry:
        v = entry["val_dice"]
        parts.append(f"- Val split (checked before the test split was scored): one-step Dice {100 * v['one_step']:.1f}, "
                     f"aux head {100 * v['aux_head']:.1f}.\n")
    return "".join(parts)


def model_card(name: str, entry: dict) -> str:
    """The Markdown model card, generated from the registry entry alone."""
    unit = "patient (3-D Dice over the patient's slices)" if entry["level"] == "per_volume" else "image"
    labels = {"one_step": "one-step consistency sample (1 NFE)", "multistep": f"2-step sample (tau = {entry['tau']})",
              "ensemble": "ensemble of 5 one-step samples", "aux_head": "auxiliary head y_hat (image encoder)"}
    rows = "\n".join(f"| {labels[o]} | {_pct(s['dice'])} | {_pct(s['iou'])} | {_mm(s['hd95'])} | {s['n']} |"
                     for o, s in entry["scores"].items())
    t = train_config_from_dict(entry["train_config"])
    drift = preset_drift(entry)
    overrides = ("\n- Differs from the preset's current training config in: " + ", ".join(
        f"{k} = {a} (preset now {b})" for k, (a, b) in drift.items()) + " (see RECIPES in scripts/build_pretrained.py)."
        if drift else "")
    return f"""# Model card: `{name}`

CTS-M ({entry['variant']}), preset `{entry['preset']}` ({entry['in_channels']}-channel input, 64 x 64),
trained on **{entry['data_name']}**. Generated by `scripts/build_pretrained.py` from
`ctslib/weights/registry.json`; do not edit by hand.

## Use

```python
import ctslib
model, info = ctslib.load_pretrained("{name}")
```
```bash
python -m ctslib predict --ckpt {name} --input scan.png --output mask.png
python -m ctslib evaluate --ckpt {name} --split test
```

## Training

- Data: the `{entry['data']}` set's train split ({entry['train_items']} items; splits fixed by the data set's
  CSV, by patient or by frame), images resized to 64 x 64.
- Recipe: `{t.objective}` with the anchored recipe (anchor beta = {t.anchor.weight}, {t.anchor.loss} on logits {t.anchor.logit_scale:g} f; sigma_max share
  {t.anchor.sigma_max_share}; L_S = {t.seg_loss}, alpha = {t.alpha}), s1 = {t.ct.s1}, lr {t.lr}, batch {t.batch_size},
  gradient-norm clip {t.grad_clip or 'off'}, EMA {t.ema_rate} (docs/method.md section 9).{overrides}
- {entry['steps']} steps, seed {entry['seed']}, {entry['train_seconds'] / 60:.0f} min on {entry['threads']} CPU thread(s),
  torch {entry['torch']}, {entry['date']}.
{cost_line(entry)}- Weights: EMA only, half precision, {entry['bytes'] / 1e6:.1f} MB, SHA-256 `{entry['sha256']}` (checked on load).
- Retrain: `{entry['command']}`

## Test-split scores

Per {unit}: {entry['test_items']} test items from {entry['test_cases']} cases; mean with a 95% bootstrap CI where the protocol gives one
(docs/evaluation.md: hard masks, fixed thresholds, scored on the files' own grid; HD95 in pixels of
the native grid per image, in voxels per patient volume). Rescored by `python scripts/build_pretrained.py {name} --check`.

| output | Dice % | IoU % | HD95 | n |
|---|---|---|---|---|
{rows}
{lesion_section(entry, labels)}
## Licence and limits

- Training data licence: {entry['licence']}. These weights are derived from that data, so the same
  **non-commercial** terms apply to them. Cite: {entry['citation']}.
- Research and teaching only. This is **not a medical device**: do not use it for diagnosis,
  treatment or any clinical decision. It has seen one data set at 64 x 64 pixels from a small
  CPU budget; expect it to fail on other scanners, protocols, resolutions or anatomy.
"""


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=HELP_FMT)
    p.add_argument("names", nargs="+", choices=sorted(RECIPES), help="pretrained checkpoints to build or check")
    p.add_argument("--data-root", default=os.environ.get("CTS_DATA_ROOT", ""),
                   help="folder with the full lgg/ and ddti/ sets (default: $CTS_DATA_ROOT)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="rescore the committed checkpoints and compare with their cards")
    mode.add_argument("--rescore", action="store_true", help="rescore the committed checkpoints and rewrite their "
                                                             "registry scores and cards (no retraining)")
    mode.add_argument("--card", action="store_true", help="rescore the committed checkpoints (no retraining), add "
                      "their lesion-wise scores to the registry and rewrite their cards; refuses if the other "
                      "scores differ from the registry's")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = p.parse_args(argv)
    if not args.data_root:
        p.error("give --data-root or set CTS_DATA_ROOT (the full data sets)")
    torch.set_num_threads(args.threads)
    root = Path(args.data_root).expanduser().resolve()
    status = 0
    for name in args.names:
        recipe = RECIPES[name]
        if args.check:
            try:
                problems = check(name, recipe, root)
            except PretrainedError as exc:
                print(f"{name}: {exc}", file=sys.stderr)
                return 2
            print(f"{name}: " + ("matches its registry entry and model card" if not problems else "; ".join(problems)))
            status |= bool(problems)
            continue
        if args.card:
            try:
                entry = with_lesion_scores(name, recipe, root)
            except PretrainedError as exc:
                print(exc, file=sys.stderr)
                return 2
        else:
            entry = rescore(name, recipe, root) if args.rescore else build(name, recipe, root, args.threads)
        (WEIGHTS_DIR / f"{name}.md").write_text(model_card(name, entry))
        print(f"{name}: {entry['bytes'] / 1e6:.2f} MB, {entry['train_seconds']:.0f} s, one-step Dice "
              f"{100 * entry['scores']['one_step']['dice']['mean']:.1f}")
    return status


if __name__ == "__main__":
    sys.exit(main())
