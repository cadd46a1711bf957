"""Preprocessed splits packed into one small .npz, for machines without the data folder.

`pack_splits` runs a dataset spec through the normal `ctslib.data` pipeline and stores the items:
images as uint8 with a per-item, per-channel affine (image = q * scale + offset, so the error is at
most (max - min) / 510 of that channel's range, about half a grey level of the 8-bit source PNGs),
masks as bits (exact), case ids and slice indices, and (for file-backed data) each item's expert mask
on its native grid with the `fit` that maps it to the model grid, so evaluation can score on the
native grid (docs/evaluation.md); each array is xz-compressed inside a plain .npz.
`PackedDataset` reads one split back with the same `(image, mask, meta)` items as `ctslib.data`
(meta = {case, slice, path}), so the trainers and `ctslib.evaluate` work unchanged.

    pack_splits("lgg", 128, ("train", "val", "test"), "gpu_pack/lgg128.npz")
    ds = PackedDataset("gpu_pack/lgg128.npz", split="test")
"""
from __future__ import annotations

import datetime as _dt
import json
import lzma
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ctslib.data.base import SegDataset
from ctslib.io_utils import atomic_write

FORMAT = "ctslib-packed-v1"


def quantize(image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(C,H,W) float -> uint8 q, per-channel scale and offset with image ~= q * scale + offset."""
    flat = image.reshape(image.shape[0], -1).astype(np.float64)
    lo, hi = flat.min(1), flat.max(1)
    scale = np.where(hi > lo, (hi - lo) / 255.0, 1.0)
    q = np.rint((flat - lo[:, None]) / scale[:, None]).clip(0, 255).astype(np.uint8)
    return q.reshape(image.shape), scale.astype(np.float32), lo.astype(np.float32)


def dequantize(q: np.ndarray, scale: np.ndarray, offset: np.ndarray) -> np.ndarray:
    """Inverse of `quantize` (float32)."""
    return q.astype(np.float32) * scale[:, None, None] + offset[:, None, None]


def _xz(arr: np.ndarray) -> np.ndarray:
    """An array's bytes, xz-compressed, as a uint8 array (about 18% smaller than zlib on MR slices)."""
    return np.frombuffer(lzma.compress(np.ascontiguousarray(arr).tobytes(), preset=6), np.uint8)


def _unxz(blob: np.ndarray, dtype: str, shape) -> np.ndarray:
    return np.frombuffer(lzma.decompress(blob.tobytes()), np.dtype(dtype)).reshape(shape)


def _atomic_savez(path: Path, arrays: dict) -> None:
    atomic_write(path, lambda tmp: np.savez(tmp, **arrays), suffix=".npz")


def pack_splits(spec: str, image_size: int, splits: Sequence[str], out: str | os.PathLike,
                limit: int | None = None, progress: bool = False) -> dict:
    """Pack `splits` of a dataset spec at `image_size` into `out` (.npz); returns the metadata dict."""
    from ctslib.data import open_dataset
    arrays: dict[str, np.ndarray] = {}
    meta = {"format": FORMAT, "spec": spec, "image_size": int(image_size), "splits": {}, "arrays": {}, "quantization":
            "uint8 per item and channel: image = q * scale + offset; masks exact (bits)",
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
    for split in splits:
        ds = open_dataset(spec, split, image_size, limit=limit)
        n, c = len(ds), ds.in_channels
        qs = np.empty((n, c, image_size, image_size), np.uint8)
        scales, offsets = np.empty((n, c), np.float32), np.empty((n, c), np.float32)
        masks = np.empty((n, image_size * image_size), bool)
        cases, slices, max_err = [], np.empty(n, np.int32), 0.0
        for i in range(n):
            image, mask, m = ds[i]
            img = image.numpy()
            qs[i], scales[i], offsets[i] = quantize(img)
            max_err = max(max_err, float(np.abs(dequantize(qs[i], scales[i], offsets[i]) - img).max()))
            masks[i] = mask.numpy().reshape(-1) > 0.5
            cases.append(str(m["case"]))
            slices[i] = int(m["slice"])
            if progress and (i + 1) % 200 == 0:
                print(f"  {split}: {i + 1}/{n}", flush=True)
        packed = [("image", qs), ("scale", scales), ("offset", offsets), ("mask", np.packbits(masks, axis=1)),
                  ("case", np.array(cases)), ("slice", slices)]
        native = [ds.native_mask(i) for i in range(n)] if ds.has_native_grid else None
        if native is not None:
            packed += [("native_shape", np.array([m.shape for m in native], np.int32)),
                       ("native_mask", np.packbits(np.concatenate([np.asarray(m, bool).reshape(-1) for m in native])))]
        for name, arr in packed:
            arrays[f"{split}_{name}"] = _xz(arr)
            meta["arrays"][f"{split}_{name}"] = {"dtype": arr.dtype.str, "shape": list(arr.shape)}
        meta["splits"][split] = {"items": n, "cases": len(set(cases)), "in_channels": c,
                                 "tumour_items": int(masks.any(1).sum()), "max_abs_error": max_err,
                                 "native_grid": native is not None, "fit": getattr(ds, "fit", "resize")}
    arrays["meta"] = np.array(json.dumps(meta))
    _atomic_savez(Path(out), arrays)
    meta["bytes"] = Path(out).stat().st_size
    return meta


def read_meta(path: str | os.PathLike) -> dict:
    """The metadata dict stored in a packed file."""
    with np.load(path) as z:
        return json.loads(str(z["meta"]))


class PackedDataset(SegDataset):
    """One split of a packed .npz: items `(image (C,S,S) float32, mask (1,S,S) {0,1}, meta)`."""

    def __init__(self, path: str | os.PathLike, split: str = "train", limit: int | None = None):
        self.path = str(path)
        with np.load(self.path) as z:
            self.pack_meta = json.loads(str(z["meta"]))
            if self.pack_meta.get("format") != FORMAT:
                raise ValueError(f"{path}: not a {FORMAT} file")
            if split not in self.pack_meta["splits"]:
                raise ValueError(f"{path}: no split {split!r}; it holds {', '.join(self.pack_meta['splits'])}")

            def get(name):
                info = self.pack_meta["arrays"][f"{split}_{name}"]
                return _unxz(z[f"{split}_{name}"], info["dtype"], info["shape"])
            slices = get("slice")
            n = len(slices) if limit is None else min(int(limit), len(slices))
            self.q = get("image")[:n]
            self.scale, self.offset = get("scale")[:n], get("offset")[:n]
            size = self.q.shape[-1]
            self.masks = np.unpackbits(get("mask")[:n], axis=1, count=size * size).reshape(n, 1, size, size)
            self.cases = [str(c) for c in get("case")[:n]]
            self.slices = slices[:n].astype(int).tolist()
            self._native = None
            if f"{split}_native_shape" in self.pack_meta["arrays"]:
                shapes = get("native_shape")
                ends = np.cumsum(shapes.prod(axis=1))
                bits = np.unpackbits(get("native_mask"), count=int(ends[-1])).astype(bool)
                self._native = (shapes[:n], ends[:n] - shapes[:n].prod(axis=1), bits)
        self.split = split
        self.fit = self.pack_meta["splits"][split].get("fit", "resize")
        self.has_native_grid = self._native is not None
        self.image_size = int(self.q.shape[-1])
        self.in_channels = int(self.q.shape[1])
        self.spec = f"packed:{self.path}"
        self.source_spec = self.pack_meta["spec"]

    def __len__(self) -> int:
        return len(self.slices)

    def meta(self, i: int) -> dict:
        return {"case": self.cases[i], "slice": self.slices[i], "path": f"{self.path}#{self.split}/{i}"}

    def native_mask(self, i: int) -> np.ndarray | None:
        """The item's expert mask on its native grid, where the pack holds it (packs made since native grids)."""
        if self._native is None:
            return None
        shapes, starts, bits = self._native
        h, w = (int(v) for v in shapes[i])
        return bits[starts[i]:starts[i] + h * w].reshape(h, w)

    def load(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        image = dequantize(self.q[i], self.scale[i], self.offset[i])
        return torch.from_numpy(image), torch.from_numpy(self.masks[i].astype(np.float32))


def open_any(spec: str, split: str, image_size: int, limit: int | None = None):
    """`packed:PATH.npz` -> PackedDataset (its size must equal image_size); anything else -> ctslib.data.open_dataset."""
    if spec.startswith("packed:"):
        ds = PackedDataset(spec.split(":", 1)[1], split, limit)
        if ds.image_size != int(image_size):
            raise ValueError(f"{spec}: packed at {ds.image_size} px but the preset needs {image_size} px; "
                             f"repack with benchmarks/pack_data.py --size {image_size}")
        return ds
    from ctslib.data import open_dataset
    return open_dataset(spec, split, image_size, limit=limit)


def source_kind(spec: str) -> str:
    """The dataset kind behind a spec ('lgg', 'ddti', 'phantom', ...), looking inside packed files."""
    if spec.startswith("packed:"):
        spec = read_meta(spec.split(":", 1)[1])["spec"]
    from ctslib.data import parse_spec
    return parse_spec(spec).kind
