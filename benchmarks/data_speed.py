"""Data-path speed: slices/s for BraTS volumes with and without the slice cache, and for the
pairs path (LGG/DDTI PNGs, cold decode and cached). A benchmark, not a test (issue #3, part 5).

    python benchmarks/data_speed.py --data-root "$CTS_DATA_ROOT" --json runs/data_speed.json

Runs on one thread (torch.set_num_threads(1)) by default: the target is >= 2,000 slices/s from
the cache on one core. Items are read in shuffled order, as a training loader would.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from ctslib.data import anisotropic_diffusion, default_data_root, open_dataset  # noqa: E402


def rate(ds, n: int, seed: int = 0) -> tuple[float, int]:
    """Items per second over n shuffled reads of ds[i]."""
    order = [i % len(ds) for i in range(n)]
    random.Random(seed).shuffle(order)
    t = time.perf_counter()
    for i in order:
        ds[i]
    return n / (time.perf_counter() - t), n


def loader_rate(ds, n_batches: int, batch_size: int = 32) -> float:
    """Slices per second through a DataLoader (main process, default collate)."""
    dl = torch.utils.data.DataLoader(ds, batch_size=batch_size, shuffle=True, num_workers=0)
    t, seen = time.perf_counter(), 0
    while seen < n_batches * batch_size:
        for images, _, _ in dl:
            seen += images.shape[0]
            if seen >= n_batches * batch_size:
                break
    return seen / (time.perf_counter() - t)


def device_info() -> dict:
    cpu = platform.processor() or "unknown"
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    info = {"cpu": cpu, "cores": os.cpu_count(), "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}
    return info


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-root", type=Path, default=default_data_root(), help="folder with brats2015/, lgg/, ddti/ (default: %(default)s)")
    ap.add_argument("--image-size", type=int, default=64, help="preset image size (default: %(default)s)")
    ap.add_argument("--reads", type=int, default=20000, help="cached reads per measurement (default: %(default)s)")
    ap.add_argument("--uncached-reads", type=int, default=4, help="reads without the cache, ~1 s each (default: %(default)s)")
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default: %(default)s = one core)")
    ap.add_argument("--cache-dir", default=None, help="cache folder (default: a fresh temporary folder, so 'cold' is cold)")
    ap.add_argument("--json", type=Path, default=None, help="also write the results to this JSON file")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cache = args.cache_dir or tempfile.mkdtemp(prefix="cts-bench-")
    size, root, res = args.image_size, args.data_root, {}
    dev = device_info()
    print(f"device: {dev['cpu']} ({dev['cores']} cores), torch {dev['torch']}, CUDA: {dev['cuda'] or 'none'}")
    print(f"single-thread note: torch.set_num_threads({args.threads}); DataLoader workers would add cores linearly")

    # --- BraTS volumes (<data root>/brats2015: 2 subjects, 240x240x155, 2 modalities; data/sample: 1 subject, 16 slices)
    spec = f"brats:{root / 'brats2015'}"
    t = time.perf_counter()
    ds = open_dataset(spec, split="all", image_size=size, cache_dir=cache)
    res["brats_cache_build_s"] = time.perf_counter() - t
    res["brats_slices"] = len(ds)
    res["brats_cached_slices_per_s"], _ = rate(ds, args.reads)
    res["brats_cached_loader_slices_per_s"] = loader_rate(ds, 50)
    big = open_dataset(spec, split="all", image_size=256, cache_dir=cache)
    res["brats_cached_256_slices_per_s"], _ = rate(big, max(args.reads // 4, 100))
    nocache = open_dataset(spec + "?cache=0", split="all", image_size=size, cache_dir=cache)
    res["brats_uncached_slices_per_s"], _ = rate(nocache, args.uncached_reads)

    # --- pairs path: PNG decode + preprocessing (cold), then the per-item .npy cache (warm)
    for name in ("lgg", "ddti"):
        ds = open_dataset(f"{name}:{root / name}", split="val", image_size=size, cache_dir=cache)
        res[f"{name}_cold_slices_per_s"], _ = rate(ds, len(ds))
        res[f"{name}_cached_slices_per_s"], _ = rate(ds, min(args.reads, 5000))

    # --- Perona-Malik diffusion, batched (256x256, 4 channels, 5 iterations)
    x = torch.rand(64, 4, 256, 256)
    t = time.perf_counter()
    anisotropic_diffusion(x)
    res["diffusion_cpu_slices_per_s"] = 64 / (time.perf_counter() - t)
    if torch.cuda.is_available():
        xg = x.cuda()
        anisotropic_diffusion(xg)
        torch.cuda.synchronize()
        t = time.perf_counter()
        for _ in range(10):
            anisotropic_diffusion(xg)
        torch.cuda.synchronize()
        res["diffusion_cuda_slices_per_s"] = 640 / (time.perf_counter() - t)

    print(f"\nimage_size={size}, reads in shuffled order, {args.threads} thread(s)")
    for key, val in res.items():
        print(f"  {key:38s} {val:12.1f}" if isinstance(val, float) else f"  {key:38s} {val:12d}")
    ok = res["brats_cached_slices_per_s"] >= 2000
    print(f"target >= 2,000 slices/s from the cache on one core: {'met' if ok else 'NOT met'}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"device": device_info(), "image_size": size, "threads": args.threads, **res}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
