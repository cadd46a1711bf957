"""`ctslib.predict`: NIfTI -> NIfTI and PNG -> PNG masks from a checkpoint (CLI and Python API)."""
from __future__ import annotations

import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from PIL import Image

from ctslib import predict as P
from ctslib.cli import main
from ctslib.config import preset
from ctslib.data import open_dataset
from ctslib.data.volumes import VolumeConfig
from ctslib.model import CTSModel
from ctslib.sampling import Segmentation

SUBJECT = "brats_2013_pat0005_1"
DDTI_IMAGE = "images/101_1(1).png"        # in the full DDTI set and in the in-repo sample


def _shape(subject: Path) -> tuple[int, int, int]:
    """The subject's volume shape: 240x240x155 in the full BraTS 2015 set, 240x240x16 in the sample."""
    return nib.load(str(subject / "Flair_subtrMeanDivStd.nii.gz")).shape


def _two_slices(subject: Path) -> tuple[int, int]:
    """Two axial slices inside the brain: 70:72 of the full volume, the middle two of the sample's slab."""
    a = min(70, _shape(subject)[2] // 2)
    return a, a + 2


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def ckpt2(tiny_checkpoint) -> Path:
    """2 image channels, like the BraTS 2015 fixture (Flair, T1c)."""
    return tiny_checkpoint("phantom:8?channels=2")


@pytest.fixture(scope="module")
def ckpt1(tiny_checkpoint) -> Path:
    """1 image channel, like DDTI ultrasound."""
    return tiny_checkpoint("phantom-us:8")


def _run(capsys, *argv) -> tuple[int, str, str]:
    rc = main(["predict", *map(str, argv)])
    out, err = capsys.readouterr()
    return rc, out, err


def _no_temp_files(folder: Path) -> None:
    assert not [p.name for p in folder.iterdir() if p.name.startswith(".") or p.name.endswith(".tmp")]


# ------------------------------------------------------------------------------------------ NIfTI
def test_nifti_round_trip_brats(data_root, full_data, ckpt2, tmp_path, capsys):
    subject = data_root / "brats2015" / SUBJECT
    out, unc = tmp_path / "mask.nii.gz", tmp_path / "std.nii"      # .nii: no slow gzip of a float map
    rc, stdout, err = _run(capsys, subject, "-o", out, "--ckpt", ckpt2, "--uncertainty", unc, "--members", "2",
                           "--device", "cpu")
    assert rc == 0, err
    ref = nib.load(str(subject / "Flair_subtrMeanDivStd.nii.gz"))
    got = nib.load(str(out))
    assert got.shape == ref.shape and ref.shape[:2] == (240, 240)
    if full_data:
        assert ref.shape == (240, 240, 155)
    np.testing.assert_array_equal(got.affine, ref.affine)
    np.testing.assert_array_equal(got.header.get_zooms(), ref.header.get_zooms())
    assert got.header["sform_code"] == ref.header["sform_code"] and got.header["qform_code"] == ref.header["qform_code"]
    assert got.get_data_dtype() == np.uint8
    mask = np.asarray(got.dataobj)
    assert mask.dtype == np.uint8 and set(np.unique(mask).tolist()) <= {0, 1}
    # slices without brain are not segmented (background), in the file's own (LPS) slice order
    brain = np.asarray(nib.load(str(subject / "brainmask.nii.gz")).dataobj) > 0.5
    assert not mask[:, :, ~brain.any(axis=(0, 1))].any()
    std = nib.load(str(unc))
    assert std.shape == ref.shape and std.get_data_dtype() == np.float32
    np.testing.assert_array_equal(std.affine, ref.affine)
    s = np.asarray(std.dataobj)
    assert np.isfinite(s).all() and s.min() >= 0 and s.max() > 0       # 2 members: a real std map
    assert '"members": 2' in stdout
    _no_temp_files(tmp_path)


def _lps_like_volume(folder: Path, shape=(6, 32, 32)) -> tuple[Path, np.ndarray]:
    """A 1-channel volume whose axes are (I, L, A): nothing like RAS, so any axis mix-up shows."""
    rng = np.random.default_rng(0)
    data = np.zeros(shape, np.float32)
    data[1:, 4:28, 6:30] = 1.0                          # "brain" box; slice 0 (along I) has no brain
    for k in range(1, shape[0]):                        # an asymmetric "lesion" that moves per slice
        data[k, 6 + k:14 + 2 * k, 8:12 + k] = 5.0
    data[data == 1.0] += rng.uniform(0, 0.1, size=int((data == 1.0).sum())).astype(np.float32)
    affine = np.array([[0, -1, 0, 10], [0, 0, 1, -5], [-1, 0, 0, 3], [0, 0, 0, 1]], float)
    path = folder / "vol.nii.gz"
    nib.save(nib.Nifti1Image(data, affine), str(path))
    return path, data


def test_canonical_to_native_inverts_as_closest_canonical(tmp_path):
    path, data = _lps_like_volume(tmp_path)
    img = nib.load(str(path))
    assert nib.aff2axcodes(img.affine) == ("I", "L", "A")
    canon = np.asarray(nib.as_closest_canonical(img).dataobj)
    assert canon.shape == (32, 32, 6)
    np.testing.assert_array_equal(P.canonical_to_native(canon, img.affine), data)


def test_nifti_mask_aligns_voxel_for_voxel(tmp_path, monkeypatch):
    """Orientation, normalisation, resize and slice order are undone exactly: an oracle segmenter that
    marks bright voxels must give back exactly the lesion of the input file."""
    path, data = _lps_like_volume(tmp_path)
    model = CTSModel(preset("test32", None, 1)[0]).eval()
    pred = P.Predictor(model, torch.device("cpu"))

    def oracle(model, image, levels, members, seeds, mask_encoding):
        m = (image[:, :1] > 1.0).float()                  # z-scored lesion >> 1, brain < 1, background 0
        return Segmentation(m, m, m, torch.zeros_like(m), torch.zeros_like(m), m, m, 1, members)

    monkeypatch.setattr(P.inference, "segment", oracle)
    out = tmp_path / "pred.nii.gz"
    P.predict_nifti(pred, [path], out)
    got = np.asarray(nib.load(str(out)).dataobj)
    np.testing.assert_array_equal(got, (data == 5.0).astype(np.uint8))
    # zero-padding instead of resizing (fit=pad) is inverted by cropping
    sub = tmp_path / "small"
    sub.mkdir()
    path2, data2 = _lps_like_volume(sub, shape=(6, 24, 30))
    P.predict_nifti(pred, [path2], sub / "pred.nii.gz", cfg=VolumeConfig(fit="pad"))
    np.testing.assert_array_equal(np.asarray(nib.load(str(sub / "pred.nii.gz")).dataobj), (data2 == 5.0).astype(np.uint8))


def test_nifti_refuses_existing_output_without_force(data_root, ckpt2, tmp_path, capsys):
    subject = data_root / "brats2015" / SUBJECT
    a, b = _two_slices(subject)
    out = tmp_path / "mask.nii.gz"
    out.write_bytes(b"keep me")
    rc, _, err = _run(capsys, subject, "-o", out, "--ckpt", ckpt2, "--slices", f"{a}:{b}")
    assert rc == 2 and str(out) in err and "--force" in err
    assert out.read_bytes() == b"keep me"
    rc, _, err = _run(capsys, subject, "-o", out, "--ckpt", ckpt2, "--slices", f"{a}:{b}", "--force")
    assert rc == 0, err
    mask = np.asarray(nib.load(str(out)).dataobj)
    assert mask.shape == _shape(subject)
    assert not mask[:, :, :a].any() and not mask[:, :, b:].any()      # LPS -> RAS flips x and y, not the slices
    _no_temp_files(tmp_path)


def test_nifti_never_overwrites_input(data_root, ckpt2, tmp_path, capsys):
    src = data_root / "brats2015" / SUBJECT
    files = [shutil.copy(src / n, tmp_path / n) for n in ("Flair_subtrMeanDivStd.nii.gz", "T1c_subtrMeanDivStd.nii.gz")]
    before = [Path(f).read_bytes() for f in files]
    a, b = _two_slices(src)
    for argv in (["-o", files[1]], ["-o", tmp_path / "m.nii.gz", "--uncertainty", files[0]]):
        rc, _, err = _run(capsys, *files, "--ckpt", ckpt2, "--slices", f"{a}:{b}", "--force", *argv)
        assert rc == 2 and "never overwrites its input" in err
    assert [Path(f).read_bytes() for f in files] == before
    assert not (tmp_path / "m.nii.gz").exists()


def test_channel_count_mismatch_is_a_clear_error(data_root, ckpt1, ckpt2, tmp_path, capsys):
    subject = data_root / "brats2015" / SUBJECT
    rc, _, err = _run(capsys, subject, "-o", tmp_path / "a.nii.gz", "--ckpt", ckpt1)
    assert rc == 2 and "expects 1 modalities" in err and "Flair, T1c" in err and "--modalities" in err
    rc, _, err = _run(capsys, subject / "Flair_subtrMeanDivStd.nii.gz", "-o", tmp_path / "b.nii.gz", "--ckpt", ckpt2)
    assert rc == 2 and "expects 2 modalities" in err and "got 1 file" in err
    rc, _, err = _run(capsys, data_root / "ddti" / DDTI_IMAGE, "-o", tmp_path / "c.png", "--ckpt", ckpt2)
    assert rc == 2 and "expects 2 image channel" in err
    # the Python API raises PredictError (a ValueError) with the same message
    pred = P.load_predictor(ckpt1, device="cpu")
    with pytest.raises(P.PredictError, match="expects 1 modalities"):
        P.predict_subject(pred, subject, tmp_path / "d.nii.gz")
    assert list(tmp_path.iterdir()) == []


def test_modalities_option_selects_files(data_root, ckpt1, tmp_path, capsys):
    subject = data_root / "brats2015" / SUBJECT
    out = tmp_path / "t1c.nii.gz"
    a, _ = _two_slices(subject)
    rc, stdout, err = _run(capsys, subject, "-o", out, "--ckpt", ckpt1, "--modalities", "T1c", "--slices", f"{a}:{a + 1}")
    assert rc == 0, err
    assert "T1c_subtrMeanDivStd.nii.gz" in stdout and "Flair" not in stdout
    assert nib.load(str(out)).shape == _shape(subject)


# -------------------------------------------------------------------------------------------- PNG
def test_png_in_png_out_ddti(data_root, ckpt1, tmp_path, capsys):
    image = data_root / "ddti" / DDTI_IMAGE
    out = tmp_path / "mask.png"
    rc, _, err = _run(capsys, image, "-o", out, "--ckpt", ckpt1, "--levels", "0.8", "--members", "2")
    assert rc == 0, err
    with Image.open(out) as im, Image.open(image) as src:
        assert im.size == src.size and im.mode == "L"
        arr = np.asarray(im)
    assert set(np.unique(arr).tolist()) <= {0, 255}
    rc, _, err = _run(capsys, image, "-o", out, "--ckpt", ckpt1)
    assert rc == 2 and str(out) in err and "--force" in err
    rc, _, err = _run(capsys, image, "-o", out, "--ckpt", ckpt1, "--output-kind", "aux", "--force")
    assert rc == 0, err
    # the README form: --input / --output options
    rc, _, err = _run(capsys, "--ckpt", ckpt1, "--input", image, "--output", tmp_path / "readme.png")
    assert rc == 0, err
    assert (tmp_path / "readme.png").is_file()
    rc, _, err = _run(capsys, "--ckpt", ckpt1, "--output", tmp_path / "none.png")
    assert rc == 2 and "--input" in err
    _no_temp_files(tmp_path)


def test_png_folder_to_mask_folder(data_root, ckpt1, tmp_path):
    src = tmp_path / "images"
    src.mkdir()
    names = ["101_1(1).png", "101_1(2).png", "104_1(1).png"]
    for n in names:
        shutil.copy(data_root / "ddti" / "images" / n, src / n)
    pred = P.load_predictor(ckpt1, device="cpu")
    with pytest.raises(P.PredictError, match="never overwrites its input"):
        P.predict_png_folder(pred, src, src, force=True)
    out = tmp_path / "masks"
    written = P.predict_png_folder(pred, src, out)
    assert sorted(p.name for p in out.iterdir()) == sorted(names) and len(written) == 3
    for n in names:
        with Image.open(out / n) as m, Image.open(src / n) as s:
            assert m.size == s.size
    (out / names[0]).unlink()
    (out / names[2]).unlink()
    (out / names[1]).write_bytes(b"old")
    with pytest.raises(P.PredictError, match=r"101_1\(2\)\.png already exists"):
        P.predict_png_folder(pred, src, out)
    assert (out / names[1]).read_bytes() == b"old" and not (out / names[0]).exists()  # all checked before any write
    P.predict_png_folder(pred, src, out, force=True)
    assert (out / names[1]).read_bytes() != b"old"


def test_same_seed_same_mask(data_root, ckpt1, tmp_path):
    pred = P.load_predictor(ckpt1, device="cpu")
    image = data_root / "ddti" / DDTI_IMAGE
    P.predict_png(pred, image, tmp_path / "a.png")
    P.predict_png(pred, image, tmp_path / "b.png")
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()


def test_compiled_predictor_matches_eager(ckpt1):
    """load_predictor(compile=True) (the predict/evaluate --compile flag) gives the eager masks."""
    from ctslib.predict import PredictOptions, load_predictor, predict_slices
    images = open_dataset("phantom-us:8", "test", 32)
    x = torch.stack([images[i][0] for i in range(4)])
    opts = PredictOptions(members=2, batch_size=4)
    eager = predict_slices(load_predictor(ckpt1, device="cpu"), x, opts)
    compiled_pred = load_predictor(ckpt1, device="cpu", compile=True)
    assert compiled_pred.model._compiled_call_impl is not None   # nn.Module.compile() took effect
    compiled = predict_slices(compiled_pred, x, opts)
    assert compiled_pred.model.state_dict().keys() == load_predictor(ckpt1, device="cpu").model.state_dict().keys()
    assert (compiled[0] == eager[0]).float().mean() > 0.999
    assert torch.allclose(compiled[1], eager[1], atol=1e-4)


def test_folder_of_subject_folders_to_mask_folder(data_root, ckpt2, tmp_path, capsys):
    subject = data_root / "brats2015" / SUBJECT
    subjects = tmp_path / "subjects"
    subjects.mkdir()
    for name in ("case_a", "case_b"):
        (subjects / name).symlink_to(subject, target_is_directory=True)
    a, b = _two_slices(subject)
    out = tmp_path / "masks"
    rc, stdout, err = _run(capsys, subjects, "-o", out, "--ckpt", ckpt2, "--slices", f"{a}:{b}", "--device", "cpu")
    assert rc == 0, err
    assert sorted(p.name for p in out.iterdir()) == ["case_a.nii.gz", "case_b.nii.gz"]
    ref = nib.load(str(subject / "Flair_subtrMeanDivStd.nii.gz"))
    for p in out.iterdir():
        got = nib.load(str(p))
        assert got.shape == ref.shape and np.allclose(got.affine, ref.affine)
    rc, _, err = _run(capsys, subjects, "-o", out, "--ckpt", ckpt2, "--slices", f"{a}:{b}", "--device", "cpu")
    assert rc == 2 and "already exists" in err                       # refused without --force
    rc, _, err = _run(capsys, subjects, "-o", tmp_path / "one.nii.gz", "--ckpt", ckpt2, "--device", "cpu")
    assert rc == 2 and "looks like a file" in err


def test_folder_of_single_channel_volumes(ckpt1, tmp_path):
    src = tmp_path / "volumes"
    src.mkdir()
    rng = np.random.default_rng(0)
    affines = {}
    for i, name in enumerate(("us_1.nii.gz", "us_2.nii")):
        affine = np.diag([0.5 + i, 0.7, 2.0, 1.0])
        affine[:3, 3] = [10.0 * i, -5.0, 3.0]
        nib.save(nib.Nifti1Image(rng.random((40, 36, 3)).astype(np.float32), affine), str(src / name))
        affines[name.split(".")[0]] = affine
    pred = P.load_predictor(ckpt1, device="cpu")
    out = tmp_path / "masks"
    written = P.predict_path(pred, [src], out, opts=P.PredictOptions(slices="all"))
    assert len(written) == 2 and sorted(p.name for p in out.iterdir()) == ["us_1.nii.gz", "us_2.nii.gz"]
    for stem, affine in affines.items():
        got = nib.load(str(out / f"{stem}.nii.gz"))
        assert got.shape == (40, 36, 3) and np.allclose(got.affine, affine)
        assert set(np.unique(np.asarray(got.dataobj))) <= {0, 1}
    with pytest.raises(P.PredictError, match="never overwrites its input"):
        P.predict_path(pred, [src], src, force=True)
