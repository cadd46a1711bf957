"""Configs: TrainConfig's nested groups, the converter for the flat configs of older checkpoints and result files,
and `override` with dotted and with the older flat field names."""
import dataclasses
import json
from pathlib import Path

import pytest
import torch

from ctslib.config import (LEGACY_FIELDS, NESTED, PRESETS, TrainConfig, flat_fields, override, preset,
                           train_config_from_dict)

REPO = Path(__file__).resolve().parents[1]


def _train_configs(obj):
    """Every `train_config` dict inside a result file (top level, rows, per-seed records)."""
    if isinstance(obj, dict):
        if isinstance(obj.get("train_config"), dict):
            yield obj["train_config"]
        for value in obj.values():
            yield from _train_configs(value)
    elif isinstance(obj, list):
        for value in obj:
            yield from _train_configs(value)


def _agrees_with_flat(cfg: TrainConfig, flat: dict) -> list[str]:
    """Names of the old flat fields whose value the converted config does not carry."""
    now, wrong = flat_fields(cfg), []
    for key, value in flat.items():
        targets = LEGACY_FIELDS.get(key, (key,))
        defaults = {t: flat_fields(TrainConfig())[t] for t in targets}
        if any(now[t] != (defaults[t] if value == "auto" else value) for t in targets):
            wrong.append(key)
    return wrong


def _with_defaults(stored: dict) -> dict:
    """A nested stored config with the fields it predates (added since it was written) at their defaults."""
    full = dataclasses.asdict(TrainConfig())
    out = {**full, **stored}
    for name, value in stored.items():
        if isinstance(value, dict):
            out[name] = {**full[name], **value}
    return out


def test_train_config_is_small_and_its_groups_default_to_off():
    assert len(dataclasses.fields(TrainConfig)) <= 16
    cfg = TrainConfig()
    assert set(NESTED) <= {f.name for f in dataclasses.fields(TrainConfig)}
    assert cfg.anchor.weight == 0 and cfg.anchor.sigma_max_share == 0              # the paper: no anchor
    assert cfg.released.mask_encoding == "pm1" and not cfg.released.frozen_target  # no parity setting
    assert not cfg.ect.edm_precond and cfg.objective == "ct"


def test_presets_round_trip_through_their_dicts():
    for name, (_, train_cfg) in PRESETS.items():
        assert train_config_from_dict(dataclasses.asdict(train_cfg)) == train_cfg, name


@pytest.mark.parametrize("name", ["ddti-tiny64", "lgg-tiny64"])
def test_shipped_weights_configs_convert(name, build_script):
    """A checkpoint stores its TrainConfig flat (written before the nested configs: lgg-tiny64) or nested
    (ddti-tiny64); both load to the config the file was trained with."""
    state = torch.load(REPO / "ctslib" / "weights" / f"{name}.pt", map_location="cpu", weights_only=True)
    stored = state["train_cfg"]
    cfg = train_config_from_dict(stored)
    if "anchor_logit_scale" in stored:                     # the flat form
        assert _agrees_with_flat(cfg, stored) == []
        assert cfg.anchor.weight == stored["anchor"] == 10.0 and cfg.ct.s1 == stored["s1"] == 5
        assert cfg.anchor.logit_scale == stored["anchor_logit_scale"]
    else:
        assert dataclasses.asdict(cfg) == _with_defaults(stored)
    # the shipped models are their recipe's preset with the anchored recipe, the recipe's steps, seed and training
    # overrides (scripts/build_pretrained.py RECIPES; an older build may keep the anchor's logit scale it was built with)
    entry = json.loads((REPO / "ctslib" / "weights" / "registry.json").read_text())[name]
    recipe = build_script.RECIPES[name]
    assert (entry["preset"], entry["steps"], entry["seed"]) == (recipe.preset, recipe.steps, recipe.seed)
    built = dataclasses.replace(preset(recipe.preset)[1], steps=recipe.steps, seed=recipe.seed)
    built = override(built, list(recipe.train_set))
    assert dataclasses.replace(cfg, anchor=built.anchor) == built
    assert cfg.anchor.weight == 10.0


def test_result_files_flat_configs_convert():
    """The train_config dicts of the committed benchmark JSONs (what benchmarks/readme_results.py reads)."""
    files = sorted((REPO / "benchmarks" / "results").glob("**/*.json"))
    seen = 0
    for path in files:
        for flat in _train_configs(json.loads(path.read_text())):
            if flat.get("anchor_loss") == "bce_dice_mask":      # a loss tried once and removed: a clear error
                with pytest.raises(ValueError, match="anchor.loss 'bce_dice_mask'"):
                    train_config_from_dict(flat)
                continue
            cfg = train_config_from_dict(flat)
            if any(isinstance(flat.get(name), dict) for name in NESTED):    # written after the nested configs
                assert dataclasses.asdict(cfg) == _with_defaults(flat), path.name
            else:
                assert _agrees_with_flat(cfg, flat) == [], path.name
            seen += 1
    assert seen >= 50
    # a file that predates some fields: they take their defaults
    assert train_config_from_dict({"s1": 5}) == dataclasses.replace(TrainConfig(), ct=dataclasses.replace(TrainConfig().ct, s1=5))
    nested = dataclasses.asdict(TrainConfig())
    del nested["ct"]["teacher_signals"]                          # a nested file from before ct.teacher_signals
    assert train_config_from_dict(nested) == TrainConfig()


def test_auto_metric_and_weighting_mean_each_objectives_own():
    old = {"objective": "ict", "metric": "auto", "weighting": "auto"}
    cfg = train_config_from_dict(old)
    assert (cfg.objective_config.metric, cfg.objective_config.weighting) == ("pseudo_huber", "ict")
    explicit = train_config_from_dict({"metric": "l2", "weighting": "karras", "objective": "ict"})
    assert (explicit.ict.metric, explicit.ict.weighting, explicit.ect.weighting) == ("l2", "karras", "karras")


def test_override_dotted_and_flat_names():
    _, tcfg = preset("test32")
    dotted = override(tcfg, ["anchor.weight=2", "anchor.sigma_max_share=0.25", "ct.s1=3", "ect.edm_precond=true"])
    flat = override(tcfg, ["anchor=2", "sigma_max_share=0.25", "s1=3", "ect_precond=true"])
    assert dotted == flat
    assert (dotted.anchor.weight, dotted.anchor.sigma_max_share, dotted.ct.s1, dotted.ect.edm_precond) == (2.0, 0.25, 3, True)
    assert override(tcfg, ["p_mean=-0.5"]).ict.p_mean == override(tcfg, ["p_mean=-0.5"]).ect.p_mean == -0.5
    with pytest.raises(ValueError, match="anchor.weight takes a float"):
        override(tcfg, ["anchor=x"])
    with pytest.raises(ValueError, match="FIELD=VALUE with FIELD one of .*anchor.weight"):
        override(tcfg, ["anchor.beta=1"])
    with pytest.raises(ValueError, match="FIELD=VALUE"):
        override(tcfg, ["ct=1"])            # a group is set field by field
