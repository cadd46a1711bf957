"""ctslib: CTS, consistency-model medical image segmentation (Zhang et al., arXiv 2405.09056)."""
__version__ = "0.1.0"
