"""Pretrained checkpoints: loading by name, checksums, compact export, model cards."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import ctslib
from ctslib import pretrained as PT
from ctslib.cli import main
from ctslib.checkpoint import build_model_from_checkpoint

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def trained(tiny_checkpoint) -> Path:
    return tiny_checkpoint("phantom-us:8")


@pytest.fixture
def weights(tmp_path, monkeypatch, trained) -> Path:
    """A private weights folder holding one compact checkpoint, `toy`, with its registry entry."""
    folder = tmp_path / "weights"
    monkeypatch.setattr(PT, "WEIGHTS_DIR", folder)
    monkeypatch.setattr(PT, "REGISTRY", folder / "registry.json")
    packed = PT.export_compact(trained, folder / "toy.pt", data_note="phantom-us:8")
    PT.write_registry_entry("toy", {"file": "toy.pt", "sha256": packed["sha256"], "command": "retrain toy"})
    return folder


def test_export_keeps_half_precision_ema_only(trained, weights):
    state = torch.load(weights / "toy.pt", weights_only=True)
    assert set(state) == {"format", "ema", "step", "model_cfg", "train_cfg", "data"}
    assert all(v.dtype == torch.float16 for v in state["ema"].values() if v.is_floating_point())
    assert (weights / "toy.pt").stat().st_size < 0.6 * Path(trained).stat().st_size / 2   # no online/target/optimiser
    full, _ = build_model_from_checkpoint(trained)
    toy, info = PT.load_pretrained("toy")
    assert info["data"] == "phantom-us:8" and info["pretrained"]["file"] == "toy.pt"
    for a, b in zip(full.state_dict().values(), toy.state_dict().values()):
        assert torch.allclose(a.float(), b.float(), atol=2e-3, rtol=1e-3)    # fp16 rounding only


def test_names_resolve_and_unknown_names_list_the_available_ones(weights, capsys):
    assert PT.pretrained_names() == ["toy"]
    assert PT.resolve_checkpoint("toy") == weights / "toy.pt"
    with pytest.raises(PT.PretrainedError, match=r"'tyo'.*available: toy"):
        PT.load_pretrained("tyo")
    rc = main(["evaluate", "--ckpt", "tyo", "--data", "phantom-us:4"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.count("\n") == 0 and "not a pretrained name (available: toy)" in err


def test_a_corrupt_file_fails_its_checksum_with_one_line(weights, capsys):
    path = weights / "toy.pt"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(PT.PretrainedError, match="corrupt"):
        PT.load_pretrained("toy")
    rc = main(["predict", "--ckpt", "toy", "--input", str(REPO / "README.md"), "--output", "x.png"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.count("\n") == 0 and "corrupt (sha256" in err and "retrain toy" in err
    path.unlink()
    with pytest.raises(PT.PretrainedError, match="missing"):
        PT.pretrained_path("toy")


def test_shipped_checkpoints_load_are_small_and_have_generated_cards(build_script):
    build = build_script
    names = ctslib.pretrained_names()
    assert {"lgg-tiny64", "ddti-tiny64"} <= set(names)
    for name in names:
        entry = PT.pretrained_entry(name)
        path = PT.pretrained_path(name)           # checksum verified
        assert path.stat().st_size <= 5 * 2**20, f"{name}: {path.stat().st_size} bytes"
        model, info = ctslib.load_pretrained(name)
        assert model.cfg.image_size == 64 and model.cfg.in_channels == entry["in_channels"]
        assert info["train_cfg"].anchor.weight > 0 and info["step"] == entry["steps"]
        card = (PT.WEIGHTS_DIR / f"{name}.md").read_text()
        assert card == build.model_card(name, entry), f"{name}.md differs from its registry entry"
        assert "non-commercial" in card and "not a medical device" in card
        assert set(entry["scores"]) == {"one_step", "multistep", "ensemble", "aux_head"}
        # the cards report cost and the val check (issue 26): parameters counted from the loaded model
        assert entry["params"]["total"] == sum(p.numel() for p in model.parameters()), name
        assert f"Parameters: {entry['params']['total']:,}" in card and "Val split" in card
        assert all("lesion_wise" in s for s in entry["scores"].values()), name


@pytest.mark.slow
@pytest.mark.parametrize("name", ["lgg-tiny64", "ddti-tiny64"])
def test_model_card_scores_are_regenerated_on_the_full_test_split(name, full_data, data_root, build_script):
    """The committed command rescoring the committed file gives the card's numbers (CI: full sets)."""
    if not full_data:
        pytest.skip("the model cards report the full test splits; the in-repo sample cannot check them")
    build = build_script
    assert build.check(name, build.RECIPES[name], Path(data_root)) == []


def test_registry_is_valid_json_with_the_retrain_command():
    entries = json.loads(PT.REGISTRY.read_text())
    for name, entry in entries.items():
        assert entry["command"].startswith(f"python scripts/build_pretrained.py {name} ")
        assert len(entry["sha256"]) == 64
