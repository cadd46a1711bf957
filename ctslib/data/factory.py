"""``open_dataset``: one spec string -> a ready torch Dataset (docs/method.md section 8)."""
from __future__ import annotations

import dataclasses
import typing
import warnings
from typing import Callable, Sequence

from ..config import ModelConfig, TrainConfig, preset
from .augment import AugmentConfig, Augmented
from .errors import DataError
from .pairs import DDTI, LGG, PairsConfig, PairsDataset
from .preprocess import DiffusionConfig
from .slices import SliceConfig, SliceDataset
from .spec import DATASETS, Spec, parse_spec
from .synthetic import PhantomSlices
from .volumes import VolumeConfig, VolumeDataset

_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def _coerce(spec: str, key: str, value: str, hint) -> object:
    """Convert one option string to the config field's type."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if typing.get_origin(hint) in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        if value.lower() == "none":
            return None
        hint = args[0]
    try:
        if hint is bool:
            if value.lower() not in _TRUE + _FALSE:
                raise ValueError(value)
            return value.lower() in _TRUE
        if hint in (int, float, str):
            return hint(value)
        if typing.get_origin(hint) is tuple:
            inner = typing.get_args(hint)[0]
            return tuple(inner(v.strip()) for v in value.split(",") if v.strip())
    except ValueError:
        pass
    raise DataError(f"dataset spec {spec!r}: option {key}={value!r} is not a valid {getattr(hint, '__name__', hint)}")


def with_options(base, spec: Spec, raw: str):
    """Return ``base`` (a config dataclass) updated with the spec's key=value options."""
    hints = typing.get_type_hints(type(base))
    names = {f.name for f in dataclasses.fields(base)}
    changes = {}
    for key, value in spec.options.items():
        if key not in names:
            raise DataError(f"dataset spec {raw!r}: unknown option {key!r} for {spec.kind} (options: {', '.join(sorted(names))})")
        changes[key] = _coerce(raw, key, value, hints[key])
    return dataclasses.replace(base, **changes)


def _open_phantom(s: Spec, raw: str, common: dict):
    unknown = set(s.options) - {"channels"}
    if unknown:
        raise DataError(f"dataset spec {raw!r}: unknown option(s) {', '.join(sorted(unknown))} for {s.kind} (options: channels)")
    kind = "mri" if s.kind == "phantom" else "us"
    ds = PhantomSlices(kind, common["split"], common["image_size"], s.count, common["diffusion"], common["seed"],
                       int(s.options.get("channels", 4)))
    if common["limit"] is not None:
        ds.n = min(ds.n, int(common["limit"]))
    return ds


def _open_pairs(base: PairsConfig):
    return lambda s, raw, common: PairsDataset(s.path, cfg=with_options(base, s, raw), **common)


# How each kind of the registry (spec.DATASETS) is opened: (spec, raw string, common keywords) -> dataset.
OPENERS: dict[str, typing.Callable] = {
    "phantom": _open_phantom,
    "phantom-us": _open_phantom,
    "brats": lambda s, raw, common: VolumeDataset(s.path, cfg=with_options(VolumeConfig(), s, raw), **common),
    "brats-slices": lambda s, raw, common: SliceDataset(s.path, cfg=with_options(SliceConfig(), s, raw), **common),
    "pairs": _open_pairs(PairsConfig()),
    "lgg": _open_pairs(LGG),
    "ddti": _open_pairs(DDTI),
}
assert set(OPENERS) == set(DATASETS), "every dataset kind in spec.DATASETS needs an opener"


def open_dataset(
    spec: str,
    split: str = "train",
    image_size: int = 64,
    *,
    augment: bool | AugmentConfig = False,
    diffusion: DiffusionConfig | None = None,
    cache_dir: str | None = None,
    seed: int = 0,
    limit: int | None = None,
):
    """Open a dataset from a spec string (see spec.py); items are (image, mask, meta).

    ``augment`` applies to the train split only; ``diffusion`` turns on Perona-Malik diffusion
    (section 8 step 3); ``limit`` caps the items, taking whole cases first.
    """
    s = parse_spec(spec) if isinstance(spec, str) else spec
    raw = spec if isinstance(spec, str) else str(spec)
    if int(image_size) <= 0:
        raise DataError(f"dataset spec {raw!r}: image_size must be > 0, got {image_size}")
    if limit is not None and int(limit) <= 0:
        raise DataError(f"dataset spec {raw!r}: empty dataset requested (limit={limit})")
    if diffusion is True:
        diffusion = DiffusionConfig()
    common = dict(split=split, image_size=image_size, diffusion=diffusion or None, cache_dir=cache_dir, seed=seed, limit=limit)
    ds = OPENERS[s.kind](s, raw, common)
    ds.spec = raw
    if augment:
        if split != "train":
            warnings.warn(f"augment=True ignored for split {split!r}: augmentation is for training only", stacklevel=2)
        else:
            ds = Augmented(ds, augment if isinstance(augment, AugmentConfig) else AugmentConfig())
    return ds


def open_for_preset(spec: str, preset_name: str, splits: Sequence[str] = ("train",), variant: str | None = None,
                    opener: Callable | None = None, **kwargs) -> tuple[ModelConfig, TrainConfig, list]:
    """A preset's configs and its data from one lookup: the splits are opened at the preset's image size
    (``opener(spec, split, size, **kwargs)``, default `open_dataset`) and the ModelConfig takes its image
    channels from the first split. Returns (ModelConfig, TrainConfig, [dataset per split])."""
    model_cfg, train_cfg = preset(preset_name, variant)
    opener = opener or open_dataset
    datasets = [opener(spec, split, model_cfg.image_size, **kwargs) for split in splits]
    return dataclasses.replace(model_cfg, in_channels=datasets[0].in_channels), train_cfg, datasets
