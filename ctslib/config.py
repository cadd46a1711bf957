"""Dataclass configs and named presets (docs/method.md sections 2.5, 2.6, 6 and 9; docs/departures.md "Policy").

A run is described by a `ModelConfig` (networks g and h, fusion, FF-Parser, preconditioning) and a
`TrainConfig` (objective, schedules, optimiser, loss). `preset(name)` gives both; `with_variant`
switches CTS-nM / CTS-M / CTS-FM and `released_mode` applies the authors'-code parity settings.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, replace

from .precond import RHO, SIGMA_DATA, SIGMA_MAX, SIGMA_MIN

VARIANTS = ("cts_nm", "cts_m", "cts_fm")
FUSIONS = ("se", "concat", "add_tiled")
OBJECTIVES = ("ct", "ict", "ect")
SEG_LOSSES = ("mse", "bce_dice")
ANCHOR_LOSSES = ("l2", "bce_dice")
# What "auto" means for the loss metric and weighting of each objective (Song & Dhariwal 2024 for iCT).
OBJECTIVE_METRIC = {"ct": "l2", "ict": "pseudo_huber", "ect": "l2"}
OBJECTIVE_WEIGHTING = {"ct": "karras", "ict": "ict", "ect": "ict"}


@dataclass(frozen=True)
class DenoiserConfig:
    """The time-conditioned UNet g (docs/method.md section 2.1)."""
    base: int = 128
    mult: tuple[int, ...] = (1, 1, 2, 2, 4)
    num_res_blocks: int = 1
    attn_resolutions: tuple[int, ...] = (16,)
    num_heads: int = 4
    dropout: float = 0.0
    zero_init: bool = True
    max_groups: int = 32
    downscale: int = 1            # g works at image_size / downscale (a power of 2); h's signals keep the detail


@dataclass(frozen=True)
class EncoderConfig:
    """The nnU-Net-like image encoder h with its auxiliary head (docs/method.md section 2.2)."""
    base: int = 32
    pools: int = 4
    norm: str = "group"       # "group" (clean) or "batch" (released)
    dropout: float = 0.0      # released: Dropout2d 0.5 after every encoder conv
    max_width: int = 480      # nnU-Net v1 2-D cap


@dataclass(frozen=True)
class ModelConfig:
    image_size: int = 256
    in_channels: int = 4                   # C_img: 4 BraTS, 1 ultrasound, 3 LGG / ISIC
    denoiser: DenoiserConfig = field(default_factory=DenoiserConfig)
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    variant: str = "cts_m"
    fusion: str = "se"
    se_reduction: int = 16
    detach_signals: bool = False           # paper: end-to-end; released: True
    aux_head: bool | None = None           # None: on for cts_m/cts_fm, off for cts_nm
    ffp_init: str = "identity"             # or "msd" (MedSegDiff N(0, 0.02^2))
    c_noise: str = "cm"                    # 250 ln t ("cm") or ln(t)/4 ("edm")
    released_eps: bool = False             # the authors' eps in the scalings (breaks f(x, sigma_min) = x)
    sigma_min: float = SIGMA_MIN           # noise range and data scale: one source, ctslib.precond
    sigma_max: float = SIGMA_MAX
    sigma_data: float = SIGMA_DATA
    rho: float = RHO

    def __post_init__(self):
        if self.variant not in VARIANTS:
            raise ValueError(f"unknown variant {self.variant!r}; choose from {VARIANTS}")
        if self.fusion not in FUSIONS:
            raise ValueError(f"unknown fusion {self.fusion!r}; choose from {FUSIONS}")

    @property
    def uses_encoder(self) -> bool:
        return self.variant != "cts_nm" or bool(self.aux_head)

    @property
    def has_aux_head(self) -> bool:
        return self.uses_encoder if self.aux_head is None else bool(self.aux_head)

    @property
    def uses_signals(self) -> bool:
        return self.variant in ("cts_m", "cts_fm")

    @property
    def uses_ffparser(self) -> bool:
        return self.variant == "cts_fm"


@dataclass(frozen=True)
class TrainConfig:
    objective: str = "ct"                  # "ct" (paper), "ict", "ect"
    steps: int = 600_000                   # K of the schedules (released 600k; paper trains 700k)
    batch_size: int = 8
    lr: float = 1e-4
    optimizer: str = "adamw"               # paper: AdamW; released: RAdam
    weight_decay: float = 0.0
    grad_clip: float = 0.0                 # 0 = off (released: no clipping)
    alpha: float = 10.0                    # L_CTS = L_CT + alpha L_S
    seg_loss: str = "mse"                  # L_S: "mse" (paper) or "bce_dice" (as the supervised U-Net)
    metric: str = "auto"                   # "l2", "pseudo_huber"; auto: l2 (ct, ect), pseudo_huber (ict)
    weighting: str = "auto"                # "karras", "uniform", "ict"; auto: karras (ct), 1/(t_hi - t_lo) (ict, ect)
    mask_encoding: str = "pm1"             # x^m = 2m-1 ("pm1") or released {0,1} ("01")
    # Anchor (denoising) term on f at the online level: + beta L_A(f(x_t, t), x^m)  (docs/method.md section 9)
    anchor: float = 0.0                    # beta; 0 = off (the paper)
    anchor_loss: str = "bce_dice"          # "l2" (CTM's DSM term) or "bce_dice" on logits = anchor_logit_scale * f
    anchor_logit_scale: float = 4.0        # f = +-1 maps to p = sigmoid(+-4) = 0.982 (the anchored recipe: 8)
    sigma_max_share: float = 0.0           # share of each batch whose online level is sigma_max (the top pair)
    # CT schedules (docs/method.md section 1.4)
    s0: int = 2
    s1: int = 200
    mu0: float = 0.95
    clamp_schedule: bool = True
    emulate_frozen_target: bool = False
    ema_rate: float = 0.9999
    # iCT (docs/method.md section 6.1)
    ict_s0: int = 10
    ict_s1: int = 1280
    p_mean: float = -1.1
    p_std: float = 2.0
    # ECT (docs/method.md section 6.2)
    ect_double_every: int = 0              # iterations per stage; 0: steps // ect_stages (ECT: 25k at batch 128)
    ect_stages: int = 4                    # stages over the run when ect_double_every = 0
    ect_denoise_share: float = 0.0         # first share of the run with r = 0 (a denoiser, ECT's init) before the stages
    ect_q: float = 2.0
    ect_k: float = 8.0
    ect_b: float = 1.0
    ect_c: float = 0.0
    ect_precond: bool = False
    seed: int = 0

    def __post_init__(self):
        if self.objective not in OBJECTIVES:
            raise ValueError(f"unknown objective {self.objective!r}; choose from {OBJECTIVES}")
        for name, value, allowed in (("optimizer", self.optimizer, ("adamw", "radam")),
                                     ("metric", self.metric, ("auto", "l2", "pseudo_huber")),
                                     ("weighting", self.weighting, ("auto", "karras", "uniform", "ict")),
                                     ("seg_loss", self.seg_loss, SEG_LOSSES),
                                     ("anchor_loss", self.anchor_loss, ANCHOR_LOSSES),
                                     ("mask_encoding", self.mask_encoding, ("pm1", "01"))):
            if value not in allowed:
                raise ValueError(f"unknown {name} {value!r}; choose from {allowed}")
        if not 0.0 <= self.sigma_max_share <= 1.0 or not 0.0 <= self.ect_denoise_share < 1.0:
            raise ValueError("sigma_max_share must lie in [0, 1] and ect_denoise_share in [0, 1)")
        if self.anchor < 0:
            raise ValueError(f"anchor weight must be >= 0, got {self.anchor}")

    @property
    def loss_metric(self) -> str:
        """The distance d actually used: `metric`, or the objective's own choice when it is "auto"."""
        return OBJECTIVE_METRIC[self.objective] if self.metric == "auto" else self.metric

    @property
    def loss_weighting(self) -> str:
        """The weighting lambda actually used: `weighting`, or the objective's own choice when it is "auto"."""
        return OBJECTIVE_WEIGHTING[self.objective] if self.weighting == "auto" else self.weighting

    @property
    def ect_stage_length(self) -> int:
        """Iterations per ECT stage: `ect_double_every`, or the run split into `ect_stages` stages after the denoiser phase."""
        if self.ect_double_every > 0:
            return self.ect_double_every
        return max(1, round(self.steps * (1.0 - self.ect_denoise_share) / max(self.ect_stages, 1)))

    def ect_stage(self, step: int) -> int | None:
        """ECT stage s of iteration `step`, or None during the initial denoiser phase (r = 0)."""
        start = round(self.ect_denoise_share * self.steps)
        if step < start:
            return None
        return (step - start) // self.ect_stage_length


def _model(size, g_base, g_mult, g_attn, h_base, h_pools, **kw) -> ModelConfig:
    return ModelConfig(image_size=size, denoiser=DenoiserConfig(base=g_base, mult=g_mult, attn_resolutions=g_attn),
                       encoder=EncoderConfig(base=h_base, pools=h_pools), **kw)


# Training recipes: named TrainConfig overrides (docs/method.md section 9.6). "paper" is CT as the paper
# writes it; "anchored" adds the anchor term and sigma_max draws, chosen by the measurements in the README.
RECIPES: dict[str, dict] = {
    "paper": dict(objective="ct", anchor=0.0, sigma_max_share=0.0, seg_loss="mse"),
    "anchored": dict(objective="ct", anchor=10.0, anchor_loss="bce_dice", anchor_logit_scale=8.0, sigma_max_share=0.5,
                     seg_loss="bce_dice"),
}


# name -> (ModelConfig, TrainConfig); docs/method.md section 2.6.
# The CPU tutorial presets (tiny64, test32) deviate on purpose from the paper's optimisation
# constants so that a few hundred CPU steps train a usable model: a coarser CT curriculum
# (s1 = 5 instead of 200: fewer consistency links between sigma_min and sigma_max to
# propagate through), lr 2e-3 instead of 1e-4, batch 16 and a faster evaluation EMA.
# At that lr they clip the gradient norm at 1 (every recipe and baseline alike): without it one of three
# LGG seeds lost its auxiliary head to an all-empty output (docs/method.md section 9.7).
# They also train with the anchored recipe, which the three-seed CPU benchmarks favour over the
# paper's CT (README, "CT recipe" tables); `with_recipe(train, "paper")` or `--recipe paper` restores it.
# The GPU presets (small128, paper256, released256) keep the paper's optimisation constants
# (s1 = 200, lr 1e-4, no clipping); small128 takes the anchored recipe as well (see below).
_TUTORIAL = dict(lr=2e-3, s1=5, batch_size=16, grad_clip=1.0, **RECIPES["anchored"])
PRESETS: dict[str, tuple[ModelConfig, TrainConfig]] = {
    "paper256": (_model(256, 128, (1, 1, 2, 2, 4), (16,), 32, 4), TrainConfig()),
    # small128 is the notebooks' "full" (GPU) profile, so it trains with the tutorial's recipe too;
    # paper256 is the paper's setting and keeps its CT (released256: the authors' code).
    "small128": (_model(128, 64, (1, 2, 2, 4), (16,), 16, 3),
                 TrainConfig(steps=50_000, ema_rate=0.999, **RECIPES["anchored"])),
    "tiny64": (_model(64, 32, (1, 2, 2), (), 16, 3), TrainConfig(steps=400, ema_rate=0.99, **_TUTORIAL)),
    "test32": (_model(32, 16, (1, 2), (), 8, 2), TrainConfig(steps=300, ema_rate=0.99, **_TUTORIAL)),
}


def with_recipe(train: TrainConfig, name: str) -> TrainConfig:
    """Apply a named training recipe (RECIPES) to a TrainConfig."""
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}; choose from {sorted(RECIPES)}")
    return replace(train, **RECIPES[name])


def override(cfg, assignments: list[str]):
    """Apply 'field=value' strings to a (frozen) config dataclass, parsing each value as the field's current type.

    A dotted field reaches a nested config: 'denoiser.dropout=0.1' on a ModelConfig.
    """
    names = {f.name: f for f in dataclasses.fields(cfg)}
    changes = {}
    for item in assignments:
        key, sep, text = item.partition("=")
        key = key.strip().replace("-", "_")
        outer, dot, inner = key.partition(".")
        if dot and sep and outer in names and dataclasses.is_dataclass(getattr(cfg, outer)):
            changes[outer] = override(changes.get(outer, getattr(cfg, outer)), [f"{inner}={text}"])
            continue
        if not sep or key not in names:
            raise ValueError(f"cannot apply {item!r}: expected FIELD=VALUE with FIELD one of {sorted(names)}")
        current = getattr(cfg, key)
        if isinstance(current, bool):
            if text.lower() not in ("true", "false", "1", "0"):
                raise ValueError(f"{key} is a flag: give true or false, not {text!r}")
            changes[key] = text.lower() in ("true", "1")
        elif isinstance(current, (int, float)):
            try:
                changes[key] = type(current)(text)
            except ValueError:
                raise ValueError(f"{key} takes a {type(current).__name__}, not {text!r}") from None
        elif isinstance(current, tuple):           # denoiser.mult=1,2 (integers; empty for ())
            try:
                changes[key] = tuple(int(x) for x in text.split(",") if x.strip())
            except ValueError:
                raise ValueError(f"{key} takes comma-separated integers, not {text!r}") from None
        else:
            changes[key] = text
    return replace(cfg, **changes)


def released_mode(model: ModelConfig, train: TrainConfig) -> tuple[ModelConfig, TrainConfig]:
    """The authors'-code parity settings (docs/departures.md, "Policy"); the crashes (rows 10-11) stay fixed."""
    enc = replace(model.encoder, norm="batch", dropout=0.5)
    den = replace(model.denoiser, zero_init=False)
    model = replace(model, encoder=enc, denoiser=den, fusion="add_tiled", detach_signals=True, released_eps=True)
    train = replace(train, optimizer="radam", weight_decay=0.0, grad_clip=0.0, steps=600_000, s1=200,
                    mask_encoding="01", alpha=10.0, metric="l2", weighting="karras",
                    **RECIPES["paper"] | dict(objective=train.objective))
    return model, train


PRESETS["released256"] = released_mode(*PRESETS["paper256"])


def _with_lowres_g(name: str) -> tuple[ModelConfig, TrainConfig]:
    """A tutorial preset whose consistency head g is right-sized for its cost: one level of base 16 at an eighth
    of the image's resolution, h's signals carrying the detail back up to full resolution (DenoiserConfig.downscale).
    The mask is a simple signal and h already sees the image; g's size was chosen by the cost/Dice sweep on the
    LGG and DDTI val splits (benchmarks/results/cost_sweep/README.md). h and the training recipe are `name`'s."""
    model, train = PRESETS[name]
    return replace(model, denoiser=DenoiserConfig(base=16, mult=(1,), attn_resolutions=(), downscale=8)), train


PRESETS["test32-lowres-g"] = _with_lowres_g("test32")
PRESETS["tiny64-lowres-g"] = _with_lowres_g("tiny64")


def preset(name: str, variant: str | None = None, in_channels: int | None = None) -> tuple[ModelConfig, TrainConfig]:
    """Return (ModelConfig, TrainConfig) of a named preset, optionally with a variant and C_img."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose from {sorted(PRESETS)}")
    model, train = PRESETS[name]
    if variant is not None:
        model = with_variant(model, variant)
    if in_channels is not None:
        model = replace(model, in_channels=in_channels)
    return model, train


def with_variant(model: ModelConfig, variant: str) -> ModelConfig:
    """Switch between CTS-nM, CTS-M and CTS-FM (docs/method.md section 2.5)."""
    return replace(model, variant=variant)


def model_config_from_dict(d: dict) -> ModelConfig:
    d = dict(d)
    d["denoiser"] = DenoiserConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in d["denoiser"].items()})
    d["encoder"] = EncoderConfig(**d["encoder"])
    return ModelConfig(**d)


def train_config_from_dict(d: dict) -> TrainConfig:
    return TrainConfig(**d)
