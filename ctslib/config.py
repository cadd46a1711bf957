"""Dataclass configs and named presets (docs/method.md sections 2.5, 2.6, 6 and 9; docs/departures.md "Policy").

A run is described by a `ModelConfig` (networks g and h, fusion, FF-Parser, preconditioning) and a
`TrainConfig` (objective, schedules, optimiser, loss). `preset(name)` gives both; `with_variant`
switches CTS-nM / CTS-M / CTS-FM and `released_mode` applies the authors'-code parity settings.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field, replace

from .precond import RHO, SIGMA_DATA, SIGMA_MAX, SIGMA_MIN

VARIANTS = ("cts_nm", "cts_m", "cts_fm")
FUSIONS = ("se", "concat", "add_tiled")
OBJECTIVES = ("ct", "ict", "ect")
OPTIMIZERS = ("adamw", "radam")
SEG_LOSSES = ("mse", "bce_dice")
TEACHER_SIGNALS = ("target", "online")
ANCHOR_LOSSES = ("l2", "bce_dice")
METRICS = ("l2", "pseudo_huber")
WEIGHTINGS = ("karras", "uniform", "ict")
MASK_ENCODINGS = ("pm1", "01")


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
class CTConfig:
    """CT, the paper's objective: curriculum N(k), target EMA mu(k) (docs/method.md section 1.4), d and lambda (step 9)."""
    s0: int = 2
    s1: int = 200
    mu0: float = 0.95
    clamp_schedule: bool = True
    metric: str = "l2"                     # d: "l2" (mean over pixels) or "pseudo_huber"
    weighting: str = "karras"              # lambda: "karras" (1/t^2 + 1/sd^2), "uniform" or "ict" (1/(t_{n+1} - t_n))
    teacher_signals: str = "target"        # {e_s} of f^-: "target" (theta^-'s own h, the paper) or "online" (sg of theta's)

    def __post_init__(self):
        _check_choices(self, "ct.", metric=METRICS, weighting=WEIGHTINGS, teacher_signals=TEACHER_SIGNALS)
        _check_ranges(self, "ct.", s0=(1, INF, "[)"), s1=(self.s0, INF, "[)"), mu0=(0, 1, "()"))


@dataclass(frozen=True)
class ICTConfig:
    """iCT (docs/method.md section 6.1): a doubling curriculum, lognormal level draws, pseudo-Huber d, 1/(t_{n+1} - t_n)."""
    s0: int = 10
    s1: int = 1280
    p_mean: float = -1.1
    p_std: float = 2.0
    metric: str = "pseudo_huber"
    weighting: str = "ict"

    def __post_init__(self):
        _check_choices(self, "ict.", metric=METRICS, weighting=WEIGHTINGS)
        _check_ranges(self, "ict.", s0=(1, INF, "[)"), s1=(self.s0, INF, "[)"), p_mean=(-INF, INF, "()"),
                      p_std=(0, INF, "()"))


@dataclass(frozen=True)
class ECTConfig:
    """ECT (docs/method.md sections 6.2 and 9.5): continuous t, the teacher at r(t) < t, stages that shrink t - r."""
    double_every: int = 0                  # iterations per stage; 0: the run after the denoiser phase split into `stages`
    stages: int = 4
    denoise_share: float = 0.0             # first share of the run with r = 0 (a denoiser, ECT's init) before the stages
    q: float = 2.0
    k: float = 8.0
    b: float = 1.0
    c: float = 0.0                         # pseudo-Huber c of d; 0: the plain L2 norm
    p_mean: float = -1.1
    p_std: float = 2.0
    weighting: str = "ict"
    edm_precond: bool = False              # train in EDM's scalings (no sigma_min shift), as ECT does

    def __post_init__(self):
        _check_choices(self, "ect.", weighting=WEIGHTINGS)
        _check_ranges(self, "ect.", double_every=(0, INF, "[)"), stages=(1, INF, "[)"), denoise_share=(0, 1, "[)"),
                      q=(1, INF, "()"), k=(0, INF, "[)"), b=(0, INF, "[)"), c=(0, INF, "[)"), p_mean=(-INF, INF, "()"),
                      p_std=(0, INF, "()"))

    def stage_length(self, steps: int) -> int:
        """Iterations per ECT stage: `double_every`, or the run split into `stages` stages after the denoiser phase."""
        if self.double_every > 0:
            return self.double_every
        return max(1, round(steps * (1.0 - self.denoise_share) / max(self.stages, 1)))

    def stage(self, step: int, steps: int) -> int | None:
        """ECT stage s of iteration `step` of a `steps`-long run, or None during the denoiser phase (r = 0)."""
        start = round(self.denoise_share * steps)
        if step < start:
            return None
        return (step - start) // self.stage_length(steps)


@dataclass(frozen=True)
class AnchorConfig:
    """What the anchored recipe adds to CT (docs/method.md section 9); the defaults are off (the paper).

    + beta L_A(f(x_t, t), x^m) on the online output, and a share of each batch drawn at the top pair (sigma_max),
    where one-step sampling evaluates f.
    """
    weight: float = 0.0                    # beta
    loss: str = "bce_dice"                 # "l2" (CTM's DSM term) or "bce_dice" on logits = logit_scale * f
    logit_scale: float = 4.0               # f = +-1 maps to p = sigmoid(+-4) = 0.982
    sigma_max_share: float = 0.0

    def __post_init__(self):
        _check_choices(self, "anchor.", loss=ANCHOR_LOSSES)
        _check_ranges(self, "anchor.", weight=(0, INF, "[)"), logit_scale=(0, INF, "()"),
                      sigma_max_share=(0, 1, "[]"))


@dataclass(frozen=True)
class ReleasedConfig:
    """Parity with the authors' released code (docs/departures.md, "Policy"); the defaults are off."""
    mask_encoding: str = "pm1"             # x^m = 2m - 1 ("pm1") or the released {0,1} masks ("01")
    frozen_target: bool = False            # never update theta^- (the released code's target stays at its init)

    def __post_init__(self):
        _check_choices(self, "released.", mask_encoding=MASK_ENCODINGS)


@dataclass(frozen=True)
class TrainConfig:
    objective: str = "ct"                  # "ct" (paper), "ict", "ect": which of ct / ict / ect below is used
    steps: int = 600_000                   # K of the schedules (released 600k; paper trains 700k)
    batch_size: int = 8
    lr: float = 1e-4
    optimizer: str = "adamw"               # paper: AdamW; released: RAdam
    weight_decay: float = 0.0
    grad_clip: float = 0.0                 # 0 = off (released: no clipping)
    ema_rate: float = 0.9999               # the evaluation EMA theta_ema
    alpha: float = 10.0                    # L_CTS = L_CT + alpha L_S
    seg_loss: str = "mse"                  # L_S: "mse" (paper) or "bce_dice" (as the supervised U-Net)
    seed: int = 0
    ct: CTConfig = field(default_factory=CTConfig)
    ict: ICTConfig = field(default_factory=ICTConfig)
    ect: ECTConfig = field(default_factory=ECTConfig)
    anchor: AnchorConfig = field(default_factory=AnchorConfig)
    released: ReleasedConfig = field(default_factory=ReleasedConfig)

    def __post_init__(self):
        _check_choices(self, objective=OBJECTIVES, optimizer=OPTIMIZERS, seg_loss=SEG_LOSSES)
        _check_ranges(self, steps=(1, INF, "[)"), batch_size=(1, INF, "[)"), lr=(0, INF, "()"),
                      weight_decay=(0, INF, "[)"), grad_clip=(0, INF, "[)"), ema_rate=(0, 1, "[)"),
                      alpha=(0, INF, "[)"), seed=(0, INF, "[)"))

    @property
    def teacher_takes_online_signals(self) -> bool:
        """Whether the teacher f^- reuses the online pass's h(x^d) (CT with ct.teacher_signals="online")."""
        return self.objective == "ct" and self.ct.teacher_signals == "online"

    @property
    def objective_config(self) -> CTConfig | ICTConfig | ECTConfig:
        """The nested config of the objective trained: `ct`, `ict` or `ect`."""
        return getattr(self, self.objective)

    @property
    def mask_encoding(self) -> str:
        """How x^m writes the mask ("pm1" or "01"): what the samplers need to read a trained model's output."""
        return self.released.mask_encoding


def _check_ranges(cfg, prefix: str = "", **rules: tuple[float, float, str]) -> None:
    """A ValueError naming the (dotted) field whose number is not finite or lies outside its range.

    Each rule is (low, high, bounds): bounds "[]", "[)", "(]" or "()" says which ends are allowed.
    """
    for name, (low, high, bounds) in rules.items():
        value = getattr(cfg, name)
        ok = math.isfinite(value) and (value >= low if bounds[0] == "[" else value > low) \
            and (value <= high if bounds[1] == "]" else value < high)
        if not ok:
            shown = f"{bounds[0]}{low:g}, {high:g}{bounds[1]}"
            raise ValueError(f"{prefix}{name} must lie in {shown}, got {value!r}")


INF = math.inf


def _check_choices(cfg, prefix: str = "", **allowed: tuple[str, ...]) -> None:
    """A ValueError naming the (dotted) field whose value is not one of its choices."""
    for name, choices in allowed.items():
        if getattr(cfg, name) not in choices:
            raise ValueError(f"unknown {prefix}{name} {getattr(cfg, name)!r}; choose from {choices}")


NESTED = {"ct": CTConfig, "ict": ICTConfig, "ect": ECTConfig, "anchor": AnchorConfig, "released": ReleasedConfig}
# The flat TrainConfig fields of checkpoints and benchmark JSONs written before the nested configs, and where each
# lives now. "metric", "weighting" and "p_mean"/"p_std" were shared by the objectives, so they set each one's own;
# their old value "auto" meant the objective's default.
LEGACY_FIELDS: dict[str, tuple[str, ...]] = {
    "anchor": ("anchor.weight",), "anchor_loss": ("anchor.loss",), "anchor_logit_scale": ("anchor.logit_scale",),
    "sigma_max_share": ("anchor.sigma_max_share",),
    "mask_encoding": ("released.mask_encoding",), "emulate_frozen_target": ("released.frozen_target",),
    "s0": ("ct.s0",), "s1": ("ct.s1",), "mu0": ("ct.mu0",), "clamp_schedule": ("ct.clamp_schedule",),
    "metric": ("ct.metric", "ict.metric"), "weighting": ("ct.weighting", "ict.weighting", "ect.weighting"),
    "ict_s0": ("ict.s0",), "ict_s1": ("ict.s1",), "p_mean": ("ict.p_mean", "ect.p_mean"),
    "p_std": ("ict.p_std", "ect.p_std"),
    **{f"ect_{name}": (f"ect.{name}",) for name in ("double_every", "stages", "denoise_share", "q", "k", "b", "c")},
    "ect_precond": ("ect.edm_precond",),
}


def _legacy_assignments(name: str, value) -> list[tuple[str, str, object]]:
    """(nested config, field, value) for an old flat field; "auto" becomes that field's default."""
    out = []
    for target in LEGACY_FIELDS[name]:
        outer, inner = target.split(".")
        default = {f.name: f.default for f in dataclasses.fields(NESTED[outer])}[inner]
        out.append((outer, inner, default if value == "auto" else value))
    return out


def _model(size, g_base, g_mult, g_attn, h_base, h_pools, **kw) -> ModelConfig:
    return ModelConfig(image_size=size, denoiser=DenoiserConfig(base=g_base, mult=g_mult, attn_resolutions=g_attn),
                       encoder=EncoderConfig(base=h_base, pools=h_pools), **kw)


# Training recipes: named TrainConfig overrides (docs/method.md section 9.6). "paper" is CT as the paper writes it;
# "anchored" adds the anchor term and sigma_max draws (AnchorConfig), chosen by the measurements in the README.
RECIPES: dict[str, dict] = {
    "paper": dict(objective="ct", anchor=AnchorConfig(), seg_loss="mse"),
    "anchored": dict(objective="ct", anchor=AnchorConfig(weight=10.0, loss="bce_dice", logit_scale=8.0, sigma_max_share=0.5),
                     seg_loss="bce_dice"),
}


# name -> (ModelConfig, TrainConfig); docs/method.md section 2.6.
# The CPU tutorial presets (tiny64, test32) deviate on purpose from the paper's optimisation constants so that a
# few hundred CPU steps train a usable model: a coarser CT curriculum (s1 = 5 instead of 200: fewer consistency
# links between sigma_min and sigma_max to propagate through), lr 2e-3 instead of 1e-4, batch 16 and a faster
# evaluation EMA. At that lr they clip the gradient norm at 1 (every recipe and baseline alike), which keeps the
# auxiliary head from collapsing to an empty output (docs/method.md section 9.7). They train with the anchored
# recipe (the README's "CT recipe" tables); `with_recipe(train, "paper")` or `--recipe paper` restores the paper's CT.
# The GPU presets (small128, paper256, released256) keep the paper's optimisation constants (s1 = 200, lr 1e-4,
# no clipping). small128, the notebooks' GPU profile, trains the anchored recipe too; paper256 is the paper's
# setting and keeps its CT (released256: the authors' code).
_TUTORIAL = dict(lr=2e-3, ct=CTConfig(s1=5), batch_size=16, grad_clip=1.0, **RECIPES["anchored"])
PRESETS: dict[str, tuple[ModelConfig, TrainConfig]] = {
    "paper256": (_model(256, 128, (1, 1, 2, 2, 4), (16,), 32, 4), TrainConfig()),
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


def override(cfg, assignments: list[str], _prefix: str = ""):
    """Apply 'field=value' strings to a (frozen) config dataclass, parsing each value as the field's current type.

    A dotted field reaches a nested config: 'denoiser.dropout=0.1' on a ModelConfig, 'anchor.weight=2' on a
    TrainConfig. The flat TrainConfig names of earlier versions ('anchor=2', 'sigma_max_share=0.25') still work.
    """
    names = field_names(cfg)
    changes = {}
    for item in assignments:
        key, sep, text = item.partition("=")
        key = key.strip().replace("-", "_")
        outer, dot, inner = key.partition(".")
        if isinstance(cfg, TrainConfig) and sep and not dot and key in LEGACY_FIELDS:
            for outer, inner, value in _legacy_assignments(key, text):
                changes[outer] = override(changes.get(outer, getattr(cfg, outer)), [f"{inner}={value}"], f"{outer}.")
            continue
        if sep and dot and key in names:
            changes[outer] = override(changes.get(outer, getattr(cfg, outer)), [f"{inner}={text}"], f"{_prefix}{outer}.")
            continue
        if not sep or key not in names:
            raise ValueError(f"cannot apply {item!r}: expected FIELD=VALUE with FIELD one of {', '.join(names)}")
        current = getattr(cfg, key)
        if isinstance(current, bool):
            if text.lower() not in ("true", "false", "1", "0"):
                raise ValueError(f"{_prefix}{key} is a flag: give true or false, not {text!r}")
            changes[key] = text.lower() in ("true", "1")
        elif isinstance(current, (int, float)):
            try:
                changes[key] = type(current)(text)
            except ValueError:
                raise ValueError(f"{_prefix}{key} takes a {type(current).__name__}, not {text!r}") from None
        elif isinstance(current, tuple):           # denoiser.mult=1,2 (integers; empty for ())
            try:
                changes[key] = tuple(int(x) for x in text.split(",") if x.strip())
            except ValueError:
                raise ValueError(f"{_prefix}{key} takes comma-separated integers, not {text!r}") from None
        else:
            changes[key] = text
    return replace(cfg, **changes)


def flat_fields(cfg) -> dict[str, object]:
    """Every leaf field of a config dataclass and its value, nested ones dotted: {'alpha': 10.0, 'anchor.weight': 0.0, ...}."""
    out = {}
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        out.update({f"{f.name}.{k}": v for k, v in flat_fields(value).items()} if dataclasses.is_dataclass(value)
                   else {f.name: value})
    return out


def field_names(cfg) -> list[str]:
    """Every settable field of a config dataclass, nested ones dotted: ['alpha', 'anchor.weight', ...]."""
    return sorted(flat_fields(cfg))


def released_mode(model: ModelConfig, train: TrainConfig) -> tuple[ModelConfig, TrainConfig]:
    """The authors'-code parity settings (docs/departures.md, "Policy"); the crashes (rows 10-11) stay fixed.

    The released code trains CT with d = L2 and karras weights; those choices are set for every objective.
    """
    enc = replace(model.encoder, norm="batch", dropout=0.5)
    den = replace(model.denoiser, zero_init=False)
    model = replace(model, encoder=enc, denoiser=den, fusion="add_tiled", detach_signals=True, released_eps=True)
    train = replace(train, optimizer="radam", weight_decay=0.0, grad_clip=0.0, steps=600_000, alpha=10.0,
                    ct=replace(train.ct, s1=200, metric="l2", weighting="karras"),
                    ict=replace(train.ict, metric="l2", weighting="karras"), ect=replace(train.ect, weighting="karras"),
                    released=replace(train.released, mask_encoding="01"),
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
    """A TrainConfig from its `asdict` form, or from the flat form (LEGACY_FIELDS) of checkpoints and benchmark
    JSONs written before the nested configs; fields a dict predates take their defaults."""
    top, nested = {}, {name: {} for name in NESTED}
    for key, value in d.items():
        if key in NESTED and isinstance(value, dict):
            nested[key].update(value)
        elif key in LEGACY_FIELDS:
            for outer, inner, v in _legacy_assignments(key, value):
                nested[outer][inner] = v
        else:
            top[key] = value
    return TrainConfig(**top, **{name: NESTED[name](**fields) for name, fields in nested.items()})
