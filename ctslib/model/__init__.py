"""CTS networks: denoiser g, image encoder h, fusion, FF-Parser (docs/method.md section 2)."""
from .cts import CTSModel, CTSOutput, count_parameters

__all__ = ["CTSModel", "CTSOutput", "count_parameters"]
