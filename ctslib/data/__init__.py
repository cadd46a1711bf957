"""ctslib.data: real scans and seeded phantoms -> (image, mask, meta) items (docs/method.md section 8).

    from ctslib.data import open_dataset
    ds = open_dataset("lgg", split="train", image_size=64)      # or phantom, brats:PATH, ...
    image, mask, meta = ds[0]    # (C,H,W) float32, (1,H,W) in {0,1}, {case, slice, path}
"""
from .augment import AugmentConfig, Augmented, augment_pair
from .errors import DataError
from .factory import open_dataset, open_for_preset
from .pairs import PairsConfig, PairsDataset
from .preprocess import DiffusionConfig, anisotropic_diffusion
from .slices import SliceConfig, SliceDataset
from .spec import Spec, default_data_root, is_sample_root, parse_spec, sample_data_root
from .splits import seeded_case_split, split_cases
from .stats import describe
from .synthetic import PhantomSlices
from .volumes import VolumeConfig, VolumeDataset, VolumeLayout

__all__ = [
    "AugmentConfig", "Augmented", "DataError", "DiffusionConfig", "PairsConfig", "PairsDataset", "PhantomSlices",
    "SliceConfig", "SliceDataset", "Spec", "VolumeConfig", "VolumeDataset", "VolumeLayout", "anisotropic_diffusion",
    "augment_pair", "default_data_root", "describe", "is_sample_root", "open_dataset", "open_for_preset", "parse_spec", "sample_data_root",
    "seeded_case_split", "split_cases",
]
