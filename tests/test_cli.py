"""`python -m ctslib`: help texts, info, the documented train -> evaluate round trip, the DDTI example."""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ctslib.cli import build_parser

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "200"}


def ctslib(*argv, timeout: int = 300) -> subprocess.CompletedProcess:
    """Run `python -m ctslib ARGV` from the repository root, as the README does."""
    proc = subprocess.run([sys.executable, "-m", "ctslib", *map(str, argv)], cwd=REPO, env=ENV,
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"ctslib {' '.join(map(str, argv))} failed:\n{proc.stderr[-3000:]}"
    return proc


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


SUBCOMMANDS = sorted(_subparsers())


def test_top_level_help_lists_every_subcommand():
    out = ctslib("--help").stdout
    assert {"info", "train", "evaluate", "predict"} <= set(SUBCOMMANDS)
    for name in SUBCOMMANDS:
        assert name in out


@pytest.mark.parametrize("name", SUBCOMMANDS)
def test_subcommand_help_documents_every_flag(name, capsys):
    parser = _subparsers()[name]
    assert issubclass(parser.formatter_class, argparse.ArgumentDefaultsHelpFormatter), "defaults must be shown"
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args([name, "--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    assert text.startswith("usage:")
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        label = action.option_strings[-1] if action.option_strings else action.dest
        assert action.help and action.help != argparse.SUPPRESS and action.help.strip(), f"{name} {label}: no help text"
        for option in action.option_strings:
            assert option in text, f"{name} --help does not list {option}"


def test_predict_flags(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["predict", "--help"])
    out = capsys.readouterr().out
    for flag in ("--ckpt", "--weights", "--levels", "--members", "--device", "--seed", "--output-kind",
                 "--uncertainty", "--force", "--modalities", "--slices"):
        assert flag in out
    assert "(default: consistency)" in out and "(default: ema)" in out


def test_info_released256_total():
    info = json.loads(ctslib("info", "--preset", "released256", "--json").stdout)
    assert info["total"] == 59_768_609
    assert info["denoiser"] == 54_414_849 and info["image_encoder"] == 5_353_760


def test_train_then_evaluate_writes_all_outputs(tmp_path):
    out = tmp_path / "run"
    ctslib("train", "--preset", "test32", "--data", "phantom:32", "--steps", "4", "--out", out,
           "--eval-every", "2", "--ckpt-every", "2")
    assert (out / "ckpt.pt").is_file()
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log if r.get("event") == "val"] == [2, 4]
    result = tmp_path / "run" / "e.json"
    ctslib("evaluate", "--ckpt", out / "ckpt.pt", "--split", "test", "--limit", "16", "--json", result)
    res = json.loads(result.read_text())
    assert {"one_step", "multistep", "ensemble", "aux_head"} <= set(res)
    assert res["split"] == "test" and res["step"] == 4 and res["weights"] == "ema"
    for output in ("one_step", "multistep", "ensemble", "aux_head"):
        for level in ("per_slice", "per_volume"):
            block = res[output][level]
            for metric in ("dice", "iou", "hd95"):
                assert {"mean", "std"} <= set(block[metric]), f"{output}.{level}.{metric}"
            assert 0.0 <= block["dice"]["mean"] <= 1.0 and block["dice"]["std"] >= 0.0
            assert block["iou"]["mean"] <= block["dice"]["mean"] + 1e-12
        assert res[output]["per_slice"]["n"] == 16


def test_documented_ddti_example_runs(data_root, tmp_path):
    """The README's DDTI example, python -m ctslib train --preset tiny64 --variant cts_m --data ddti:data/sample/ddti
    --steps 2000 --out runs/ddti, run as written (relative data path, from the repository root) with 2 steps; on the
    full data sets (CTS_DATA_ROOT) with their DDTI folder."""
    spec = "ddti:data/sample/ddti"
    if (REPO / "data" / "sample" / "ddti").resolve() != (data_root / "ddti").resolve():
        spec = f"ddti:{data_root / 'ddti'}"          # CTS_DATA_ROOT: the full sets
    out = tmp_path / "runs" / "ddti"
    proc = ctslib("train", "--preset", "tiny64", "--variant", "cts_m", "--data", spec, "--steps", "2", "--out", out)
    assert json.loads(proc.stdout.strip().splitlines()[-1])["step"] == 2
    start = json.loads((out / "log.jsonl").read_text().splitlines()[0])
    assert start["model"]["in_channels"] == 1 and start["model"]["image_size"] == 64 and start["model"]["variant"] == "cts_m"
    assert (out / "ckpt.pt").is_file()
    # README: evaluate scores on the files' own grid by default (--grid model: at the model's 64 px)
    for grid in ("native", "model"):
        result = out / f"{grid}.json"
        ctslib("evaluate", "--ckpt", out / "ckpt.pt", "--split", "test", "--limit", "4", "--outputs", "one_step",
               "--grid", grid, "--json", result)
        res = json.loads(result.read_text())
        assert res["grid"] == grid and res["one_step"]["grid"] == grid and res["one_step"]["per_slice"]["n"] == 4


def test_bad_input_is_one_clear_line_and_exit_code_2(tmp_path, capsys, monkeypatch):
    from ctslib.cli import main
    monkeypatch.delenv("CTS_DEBUG", raising=False)
    missing = tmp_path / "no_such_folder"
    assert main(["train", "--data", f"lgg:{missing}", "--preset", "test32", "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ctslib: error:") and str(missing) in err and "Traceback" not in err
    monkeypatch.setenv("CTS_DEBUG", "1")   # developers get the traceback
    with pytest.raises(ValueError):
        main(["train", "--data", f"lgg:{missing}", "--preset", "test32", "--out", str(tmp_path / "run")])
