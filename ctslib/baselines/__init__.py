"""Baselines for CTS, on the same data pipeline and metrics.

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
    from ..checkpoint import CheckpointError, checkpoint_configs, checkpoint_weights, load_checkpoint, load_weights
    state = load_checkpoint(path, map_location=map_location)
    cfg, _ = checkpoint_configs(path, state)
    if state.get("kind") == "supervised":
        model = SupervisedUNet(cfg)
    elif state.get("kind") == "diffusion":
        try:
            model = EDMDenoiser(cfg, EDMConfig(**(state.get("extra") or {})))
        except TypeError as exc:
            raise CheckpointError(f"checkpoint {path}: its diffusion config is not valid ({exc})") from None
    else:
        raise CheckpointError(f"{path}: not a baseline checkpoint (kind={state.get('kind')!r})")
    load_weights(path, model, checkpoint_weights(path, state, weights))
    model.eval()
    return model, state
