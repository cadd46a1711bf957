"""Example data for notebook 02: one BraTS-style volume (or a seeded phantom stack) and the 2-D pair sets."""
from __future__ import annotations

from pathlib import Path

import torch


def demo_volume(brats: str | Path | None = None) -> dict:
    """One BraTS-style subject (the first under ``brats``) as arrays, or a seeded phantom stack.

    Returns channels (C,X,Y,Z) raw, mask (X,Y,Z) bool, brain (X,Y,Z) bool, names, case, source.
    """
    if brats and Path(brats).is_dir():
        from .volumes import VolumeConfig, case_files, find_cases, load_case, resolve_layout
        folder = find_cases(Path(brats))[0]
        layout = resolve_layout(VolumeConfig(), folder)
        channels, mask, brain = load_case(case_files(folder, layout), layout)
        return {"channels": channels, "mask": mask, "brain": brain, "names": list(layout.modalities),
                "case": folder.name, "source": str(folder)}
    from .phantoms import PhantomConfig, make_phantom
    items = [make_phantom(i, PhantomConfig(size=96), seed=0, split="train") for i in range(24)]
    channels = torch.stack([im for im, _ in items], -1).numpy()
    mask = torch.stack([m[0] for _, m in items], -1).numpy() > 0.5
    return {"channels": channels, "mask": mask, "brain": (channels != 0).any(0),
            "names": ["t1", "t1ce", "t2", "flair"], "case": "phantom stack", "source": "phantom (not a real volume)"}


def pair_specs(root: Path | None) -> dict[str, str]:
    """Specs of the 2-D pair sets shown in 02: DDTI and LGG from the data root, else phantoms."""
    if root is not None and (root / "ddti").is_dir() and (root / "lgg").is_dir():
        return {"DDTI (thyroid ultrasound)": f"ddti:{root / 'ddti'}", "LGG (brain MRI)": f"lgg:{root / 'lgg'}"}
    return {"phantom-us (ultrasound-like)": "phantom-us", "phantom (MRI-like)": "phantom"}
