"""`python -m ctslib predict`: segment NIfTI volumes or pictures with a checkpoint (ctslib.predict)."""
from __future__ import annotations

import json

from .common import HELP_FMT, UsageError, device_name, noise_levels, note, positive_int, seed_int


def add_parser(subparsers):
    """Register `python -m ctslib predict`."""
    from ..predict import OUTPUT_KINDS
    from ..predict import __doc__ as about
    p = subparsers.add_parser("predict", help="segment NIfTI volumes or PNG pictures with a checkpoint",
                              description=about.split("\n\n")[0],
                              formatter_class=HELP_FMT)
    p.add_argument("inputs", nargs="*", metavar="INPUT",
                   help="a subject folder of per-modality NIfTI files, NIfTI file(s) in channel order, one picture "
                        "(PNG), a folder of pictures, or a folder of scans (subject folders; for a 1-channel "
                        "checkpoint also NIfTI volumes) with an output folder")
    p.add_argument("-i", "--input", dest="input_flags", metavar="PATH", nargs="+", action="extend", default=[],
                   help="the same as INPUT, as an option (README form: --input scan.png --output mask.png)")
    p.add_argument("-o", "--output", required=True, help="mask to write (.nii.gz for volumes, .png for a picture) "
                                                         "or an output folder for a folder of pictures")
    p.add_argument("--ckpt", required=True, help="checkpoint (OUT/ckpt.pt), EMA snapshot, or a pretrained name (e.g. lgg-tiny64)")
    p.add_argument("--weights", choices=["ema", "model"], default="ema", help="EMA (default) or online weights")
    p.add_argument("--modalities", default=None, help="comma-separated modality names inside a subject folder, in "
                                                      "channel order (default: the training spec's or the detected "
                                                      "layout's, e.g. Flair,T1c for BraTS 2015)")
    p.add_argument("--brain-mask", default="auto", help="brain-mask NIfTI for the normalisation; 'auto' = the "
                                                        "folder's layout brain mask if any, 'none' = voxels where "
                                                        "any modality is above its minimum")
    p.add_argument("--uncertainty", default=None, help="also write the ensemble std as float32 NIfTI to this path "
                                                       "(all zeros with --members 1)")
    p.add_argument("--levels", type=noise_levels, default="", help="multistep levels after sigma_max, comma-separated (choose on val); "
                                                "empty = one step")
    p.add_argument("--members", type=positive_int, default=1, help="ensemble size E (mask = mean sample > threshold)")
    p.add_argument("--output-kind", choices=list(OUTPUT_KINDS), default="consistency",
                   help="which output to write: the consistency sample or the auxiliary head y_hat")
    p.add_argument("--slices", default="brain", help="axial slices to segment (canonical index): brain, all or A:B; "
                                                     "the others are written as background")
    p.add_argument("--batch-size", type=positive_int, default=16, help="slices per forward pass")
    p.add_argument("--anisotropic", action="store_true", help="Perona-Malik preprocessing (use if trained with it)")
    p.add_argument("--device", type=device_name, default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--seed", type=seed_int, default=0, help="sampling seed")
    p.add_argument("--force", action="store_true", help="overwrite existing outputs (inputs are never overwritten)")
    p.add_argument("--compile", action="store_true", help="torch.compile the network (minutes to compile; pays off "
                                                          "on many slices)")
    p.add_argument("--max-pixels", type=positive_int, default=None,
                   help="refuse pictures with more pixels than this (default: ctslib.data.readers.MAX_PIXELS)")
    p.set_defaults(func=cmd_predict)
    return p


def cmd_predict(args) -> int:
    from ..data.preprocess import DiffusionConfig
    from ..data.readers import pixel_limit
    from ..predict import PredictOptions, load_predictor, predict_path
    inputs = list(args.inputs) + list(args.input_flags)
    if not inputs:
        raise UsageError("predict: give the input as INPUT or --input PATH")
    opts = PredictOptions(levels=args.levels, members=args.members, seed=args.seed, output_kind=args.output_kind,
                          batch_size=args.batch_size, slices=args.slices,
                          diffusion=DiffusionConfig() if args.anisotropic else None, notify=note)
    pred = load_predictor(args.ckpt, args.weights, args.device, compile=args.compile)
    modalities = [m.strip() for m in args.modalities.split(",") if m.strip()] if args.modalities else None
    with pixel_limit(args.max_pixels):
        result = predict_path(pred, inputs, args.output, args.uncertainty, modalities, args.brain_mask, opts, args.force)
    print(json.dumps({"checkpoint": str(args.ckpt), "step": pred.step, "weights": pred.weights,
                      "output_kind": opts.output_kind, "levels": list(args.levels), "members": opts.members,
                      "written": result}))
    return 0
