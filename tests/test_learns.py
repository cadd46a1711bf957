"""It learns: the whole CT loop, not only its parts.

The test32 preset (the CT objective: EMA target with mu(k), progressive N(k), karras weights; its anchored
recipe adds alpha L_S and beta L_A) trains on seeded MRI-like phantoms on the CPU and must reach a one-step
consistency Dice above 0.9 on held-out phantoms. The aux head is scored too but is not the claim.
"""
import json

from ctslib.config import preset
from ctslib.data import open_dataset
from ctslib.evaluate import EvalOptions, evaluate, headline
from ctslib.checkpoint import build_model_from_checkpoint
from ctslib.train import RunOptions, train


def test_test32_ct_learns_phantoms_one_step(tmp_path):
    mcfg, tcfg = preset("test32", "cts_m")
    train_set = open_dataset("phantom", "train", mcfg.image_size)
    val_set = open_dataset("phantom", "val", mcfg.image_size)
    assert tcfg.objective == "ct" and train_set.in_channels == mcfg.in_channels
    train(mcfg, tcfg, train_set, None, RunOptions(out=str(tmp_path), ckpt_every=tcfg.steps, progress=False))
    model, info = build_model_from_checkpoint(tmp_path / "ckpt.pt")  # the EMA weights
    assert info["step"] == tcfg.steps
    scores = headline(evaluate(model, val_set, opts=EvalOptions(outputs=("one_step", "aux_head"), progress=False)))
    print(json.dumps(scores))
    assert scores["one_step"] > 0.9, scores
    log = [json.loads(line) for line in open(tmp_path / "log.jsonl")]
    losses = [r["loss"] for r in log if "loss" in r]
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5  # and the loss went down
