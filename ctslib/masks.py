"""How the consistency branch writes the expert mask m and reads a sample back (docs/method.md sections 1.1 and 3.5).

The paper trains on x^m = 2m - 1 in {-1, +1} and thresholds a sample at 0; the authors' released code
trains on m in {0, 1} and thresholds at 0.5. The choice is made once (TrainConfig.released.mask_encoding)
and used at the two edges: where the mask enters the loss (`encode`) and where a sample becomes a mask
(`threshold`, `probability`).
"""
from __future__ import annotations

import torch


class PlusMinusOne:
    """x^m = 2m - 1 in {-1, +1} (the paper)."""
    name, threshold = "pm1", 0.0

    def encode(self, mask: torch.Tensor) -> torch.Tensor:
        return 2.0 * mask - 1.0

    def probability(self, y: torch.Tensor) -> torch.Tensor:
        """Foreground probability of a sample in mask units: (y + 1) / 2."""
        return ((y + 1) / 2).clamp(0, 1)

    def logits(self, f: torch.Tensor, scale: float) -> torch.Tensor:
        """Logits whose sign is the threshold's decision: scale * f."""
        return scale * f.float()


class ZeroOne:
    """x^m = m in {0, 1} (the released code)."""
    name, threshold = "01", 0.5

    def encode(self, mask: torch.Tensor) -> torch.Tensor:
        return mask

    def probability(self, y: torch.Tensor) -> torch.Tensor:
        return y.clamp(0, 1)

    def logits(self, f: torch.Tensor, scale: float) -> torch.Tensor:
        """scale * (2f - 1): zero at the 0.5 threshold."""
        return scale * (2.0 * f.float() - 1.0)


MaskCoding = PlusMinusOne | ZeroOne
CODINGS: dict[str, MaskCoding] = {"pm1": PlusMinusOne(), "01": ZeroOne()}
PM1 = CODINGS["pm1"]


def mask_coding(encoding: str | MaskCoding = "pm1") -> MaskCoding:
    """The coding named "pm1" or "01" (a coding object is returned as it is)."""
    if not isinstance(encoding, str):
        return encoding
    if encoding not in CODINGS:
        raise ValueError(f"unknown mask encoding {encoding!r}; choose from {sorted(CODINGS)}")
    return CODINGS[encoding]
