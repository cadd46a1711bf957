"""Baselines for CTS, on the same data pipeline and metrics (issue #6).

- `supervised`: the image encoder h with its head, trained alone (what the released CTS code scores).
- `diffusion`: an EDM denoiser on the identical CTS network, N-step Heun/Euler sampling, 5-member ensemble.
- `evaluate`: `evaluate_segmenter`, the CTS evaluation protocol for any segmenter.
"""
from .diffusion import EDMConfig, EDMDenoiser, EDMLoss, diffusion_segment, edm_sample, train_diffusion
from .evaluate import cts_segmenter, diffusion_segmenter, evaluate_segmenter, supervised_segmenter
from .supervised import SupervisedConfig, SupervisedLoss, SupervisedUNet, supervised_segment, train_supervised

__all__ = [
    "EDMConfig", "EDMDenoiser", "EDMLoss", "SupervisedConfig", "SupervisedLoss", "SupervisedUNet",
    "cts_segmenter", "diffusion_segment", "diffusion_segmenter", "edm_sample", "evaluate_segmenter",
    "load_baseline", "supervised_segment", "supervised_segmenter", "train_diffusion",
    "train_supervised",
]


def load_baseline(path, weights: str = "ema", map_location="cpu"):
    """Rebuild a baseline (SupervisedUNet or EDMDenoiser) from OUT/ckpt.pt written by `ctslib.train.fit`; returns (model, state)."""
    from ..checkpoint import load_checkpoint
    from ..config import model_config_from_dict
    state = load_checkpoint(path, map_location=map_location)
    cfg = model_config_from_dict(state["model_cfg"])
    if state.get("kind") == "supervised":
        model = SupervisedUNet(cfg)
    elif state.get("kind") == "diffusion":
        model = EDMDenoiser(cfg, EDMConfig(**state["extra"]))
    else:
        raise ValueError(f"{path}: not a baseline checkpoint (kind={state.get('kind')!r})")
    model.load_state_dict(state[weights])
    model.eval()
    return model, state
