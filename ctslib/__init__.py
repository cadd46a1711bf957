"""ctslib: CTS, consistency-model medical image segmentation (Zhang et al., arXiv 2405.09056)."""
__version__ = "0.1.0"

from .pretrained import load_pretrained, pretrained_names  # noqa: E402

__all__ = ["load_pretrained", "pretrained_names", "__version__"]
