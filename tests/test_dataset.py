"""Tests of utils.data.patches: names, reading, stats, pack, bad input, CLI, tf.data input."""

from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest

from utils.data.patches import (
    PACK_VERSION,
    PatchError,
    augment,
    compute_stats,
    load_patches,
    main,
    make_tf_dataset,
    pack_patches,
    parse_patch_name,
    sample_weights,
    skip_report_path,
    write_patch,
)
from utils.normalisation import load_stats, stats_from_array
from utils.study import CLASS_INDEX, FEATURES, N_CLASSES, N_FEATURES, feature_indices

ROOT = Path(__file__).resolve().parents[1]

# Patches of the synthetic dataset: fold 5 is left empty on purpose.
NAMES = [
    "0_aletsch_2019-08-22_ice.tif",
    "0_aletsch_2019-08-22_p1_snow.tif",
    "0_hef_2020-07-30_p_2_x_debris.tif",
    "1_hef_2020-07-30_p3_firn.tif",
    "1_aletsch_2019-08-22_p4_shadow.tif",
    "2_hef_2020-07-30_p5_refrozen-like.tif",
    "2_hef_2021-08-01_p6_water.tif",
    "2_rhone_2021-08-01_p7_cloud.tiff",
    "3_rhone_2021-08-01_p8_ice.tif",
    "3_aletsch_2019-08-22_p9_snow.tif",
    "4_rhone_2021-08-01_p10_ice.tif",
    "4_hef_2021-08-01_p11_debris.tif",
]


def _patch(i: int, shape: tuple[int, int, int] = (33, 33, N_FEATURES)) -> np.ndarray:
    """A deterministic patch whose values differ per file and per channel."""
    rng = np.random.default_rng(i)
    scale = np.arange(1, shape[2] + 1, dtype=np.float32) * 10.0
    return (rng.random(shape, dtype=np.float32) - 0.3) * scale


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, np.ndarray]]:
    folder = tmp_path_factory.mktemp("patches")
    raw = {}
    for i, name in enumerate(NAMES):
        raw[name] = _patch(i)
        write_patch(folder / name, raw[name])
    (folder / "README.txt").write_text("not a patch")
    (folder / ".hidden_0_a_d_ice.tif").write_text("ignored")
    return folder, raw


@pytest.fixture(scope="module")
def pack(dataset, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("pack") / "patches.h5"
    pack_patches(dataset[0], out, progress=False)
    return out


def _sorted_names(folds=range(6)) -> list[str]:
    names = [n for n in NAMES if int(n[0]) in folds]
    return sorted(names, key=lambda n: (int(n[0]), n))


# --------------------------------------------------------------------------- names


@pytest.mark.parametrize(
    ("name", "fold", "glacier", "date", "ident", "cls"),
    [
        ("0_aletsch_2019-08-22_ice.tif", 0, "aletsch", "2019-08-22", "", "ice"),
        ("5_hef_20200801_p12_snow.tif", 5, "hef", "20200801", "p12", "snow"),
        (
            "3_hef_20200801_pt_12_b_refrozen-like.tif",
            3,
            "hef",
            "20200801",
            "pt_12_b",
            "refrozen-like",
        ),
        ("/some/dir/2_x_d_1_cloud.TIFF", 2, "x", "d", "1", "cloud"),
    ],
)
def test_parse_good_names(name, fold, glacier, date, ident, cls):
    p = parse_patch_name(name)
    assert (p.fold, p.glacier, p.date, p.id) == (fold, glacier, date, ident)
    assert p.label == CLASS_INDEX[cls] and p.class_name == cls
    assert p.file == Path(name).name


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("0_aletsch_2019_ice.png", "not a .tif"),
        ("0_aletsch_ice.tif", "3 '_'-separated fields"),
        ("6_aletsch_2019_ice.tif", "fold '6'"),
        ("x_aletsch_2019_ice.tif", "fold 'x'"),
        ("-1_aletsch_2019_ice.tif", "fold '-1'"),
        ("0_aletsch_2019_rock.tif", "unknown class 'rock'"),
        ("0_aletsch_2019_Ice.tif", "unknown class 'Ice'"),
        ("0__2019_ice.tif", "empty glacier"),
        ("0_aletsch__ice.tif", "empty date"),
        ("0_aletsch_2019__ice.tif", "empty id"),
    ],
)
def test_parse_bad_names(name, problem):
    with pytest.raises(PatchError) as err:
        parse_patch_name(name)
    assert name in str(err.value) and problem in str(err.value)


# --------------------------------------------------------------------------- reading


def test_load_folder_raw(dataset):
    folder, raw = dataset
    ps = load_patches(folder)
    names = _sorted_names()
    assert ps.x.shape == (len(names), 33, 33, N_FEATURES) and ps.x.dtype == np.float32
    assert ps.meta["file"].tolist() == names  # non-.tif and hidden files ignored
    np.testing.assert_array_equal(ps.x, np.stack([raw[n] for n in names]))
    assert ps.y.tolist() == [CLASS_INDEX[n.rsplit("_", 1)[1].split(".")[0]] for n in names]
    assert ps.meta["fold"].tolist() == [int(n[0]) for n in names]
    assert ps.meta["glacier"].tolist() == [n.split("_")[1] for n in names]
    assert ps.meta["date"].tolist() == [n.split("_")[2] for n in names]
    assert not ps.normalised and len(ps.skipped) == 0


def test_load_patches_subfolder(dataset, tmp_path):
    sub = tmp_path / "patches"
    sub.mkdir()
    write_patch(sub / NAMES[0], _patch(0))
    ps = load_patches(tmp_path)
    assert ps.meta["file"].tolist() == [NAMES[0]]


def test_fold_and_feature_selection(dataset, pack):
    folder, raw = dataset
    groups = ("optical", "slope", "proximity")
    idx = feature_indices(groups)
    for source in (folder, pack):
        ps = load_patches(source, folds=[3, 1], features=groups)
        names = _sorted_names([1, 3])
        assert ps.meta["file"].tolist() == names
        assert ps.features == tuple(idx) == (0, 1, 2, 3, 4, 5, 7, 10)
        assert ps.feature_names[-1] == "proximity"
        np.testing.assert_array_equal(ps.x, np.stack([raw[n][..., idx] for n in names]))


def test_empty_fold(dataset, pack):
    for source in dataset[0], pack:
        ps = load_patches(source, folds=5, features=["optical"])
        assert ps.x.shape == (0, 33, 33, 6) and ps.y.shape == (0,) and len(ps.meta) == 0
    with pytest.raises(PatchError, match="no valid patches"):
        compute_stats(pack, folds=[5])
    with pytest.raises(ValueError, match="folds must be"):
        load_patches(pack, folds=[6])


# --------------------------------------------------------------------------- stats


def test_stats_cli_json_and_pickle(dataset, pack, tmp_path):
    folder, raw = dataset
    out = tmp_path / "stats.json"
    assert main(["stats", str(folder), str(out)]) == 0
    expected = stats_from_array(np.stack(list(raw.values())))
    got = load_stats(out)
    np.testing.assert_allclose(got.min, expected.min, rtol=0, atol=0)
    np.testing.assert_allclose(got.max, expected.max, rtol=0, atol=0)

    # the same statistics from the pack, and for a subset of folds
    out_pack = tmp_path / "stats_pack.json"
    assert main(["stats", str(pack), str(out_pack), "--folds", "1", "3"]) == 0
    sub = stats_from_array(np.stack([raw[n] for n in _sorted_names([1, 3])]))
    np.testing.assert_array_equal(load_stats(out_pack).max, sub.max)
    assert not np.array_equal(sub.max, expected.max)

    # the study's pickle (mins, maxs) normalises exactly like our JSON
    pkl = tmp_path / "globalminmax.pickle"
    pkl.write_bytes(pickle.dumps((got.min.astype(np.float32), got.max.astype(np.float32))))
    from_pickle = load_patches(pack, stats=pkl)
    from_json = load_patches(folder, stats=out)
    assert from_pickle.normalised
    np.testing.assert_allclose(from_pickle.x, from_json.x, atol=1e-6)
    x = from_json.x.reshape(-1, N_FEATURES)
    np.testing.assert_allclose(x.min(axis=0), 0, atol=1e-6)
    np.testing.assert_allclose(x.max(axis=0), 1, atol=1e-6)
    names = _sorted_names()
    manual = (raw[names[0]] - got.min) / (got.max - got.min)
    np.testing.assert_allclose(from_json.x[0], manual, rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------- pack


def test_pack_round_trip(dataset, pack):
    folder, _ = dataset
    for folds in (None, [2], [0, 4]):
        a = load_patches(folder, folds=folds)
        b = load_patches(pack, folds=folds)
        np.testing.assert_array_equal(a.x, b.x)
        np.testing.assert_array_equal(a.y, b.y)
        pd.testing.assert_frame_equal(a.meta, b.meta)
    with h5py.File(pack) as h5:
        assert h5.attrs["version"] == PACK_VERSION
        assert list(h5.attrs["features"]) == list(FEATURES)
        offsets = h5["fold_offsets"][:]
        folds = h5["fold"][:]
    counts = [sum(n[0] == str(f) for n in NAMES) for f in range(6)]
    assert offsets.tolist() == np.concatenate([[0], np.cumsum(counts)]).tolist()
    for f in range(6):  # each fold is one contiguous slice
        assert (folds[offsets[f] : offsets[f + 1]] == f).all()


def test_pack_of_pack_identical(pack, tmp_path):
    out = tmp_path / "again.h5"
    pack_patches(pack, out, progress=False)
    a, b = load_patches(pack), load_patches(out)
    np.testing.assert_array_equal(a.x, b.x)
    pd.testing.assert_frame_equal(a.meta, b.meta)


def test_pack_version_checked(pack, tmp_path):
    bad = tmp_path / "old.h5"
    bad.write_bytes(pack.read_bytes())
    with h5py.File(bad, "a") as h5:
        h5.attrs["version"] = PACK_VERSION + 1
    with pytest.raises(PatchError, match=f"{bad}: pack format version {PACK_VERSION + 1}"):
        load_patches(bad)
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as h5:
        h5["x"] = np.zeros(3)
    with pytest.raises(PatchError, match=f"{other}: not a patch pack"):
        load_patches(other)
    cut = tmp_path / "cut.h5"
    cut.write_bytes(pack.read_bytes()[: pack.stat().st_size // 2])
    with pytest.raises(PatchError, match=f"{cut}: .*unreadable"):
        load_patches(cut)


@pytest.mark.parametrize("command", ["pack", "stats"])
def test_cli_refuses_to_overwrite(dataset, tmp_path, capsys, command):
    folder, _ = dataset
    out = tmp_path / "out.json"
    out.write_text("keep me")
    with pytest.raises(SystemExit) as ex:
        main([command, str(folder), str(out)])
    assert ex.value.code == 2
    err = capsys.readouterr().err
    assert "already exists" in err and len(err.strip().splitlines()) == 1
    assert out.read_text() == "keep me"
    assert main([command, str(folder), str(out), "--overwrite"]) == 0
    assert out.read_bytes() != b"keep me"


def test_pack_cli_refuses_overwrite(dataset, tmp_path, capsys):
    folder, _ = dataset
    out = tmp_path / "out.h5"
    out.write_text("keep me")
    with pytest.raises(SystemExit) as ex:
        main(["pack", str(folder), str(out)])
    assert ex.value.code == 2
    assert out.read_text() == "keep me"
    with pytest.raises(FileExistsError):
        pack_patches(folder, out, progress=False)
    assert out.read_text() == "keep me"

    assert main(["pack", str(folder), str(out), "--overwrite"]) == 0
    assert len(load_patches(out)) == len(NAMES)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.h5"]  # no temporary left


@pytest.mark.parametrize(
    "args",
    [
        ["stats", "/no/such/folder", "{tmp}/s.json"],
        ["pack", "/no/such/folder", "{tmp}/p.h5"],
        ["stats", "{data}", "/no/such/dir/s.json"],
        ["stats", "{data}", "{tmp}/s.json", "--folds", "7"],
        ["stats", "{data}"],
        ["pack", "{tmp}", "{tmp}/p.h5"],  # a folder without patches
    ],
)
def test_cli_usage_errors(args, dataset, tmp_path, capsys):
    argv = [a.format(tmp=tmp_path, data=dataset[0]) for a in args]
    with pytest.raises(SystemExit) as ex:
        main(argv)
    assert ex.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "error:" in err
    assert list(tmp_path.iterdir()) == []


def test_cli_subprocess_bad_path(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "utils.data.patches",
            "stats",
            str(tmp_path / "nope"),
            str(tmp_path / "s.json"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert str(tmp_path / "nope") in proc.stderr


# --------------------------------------------------------------------------- bad input


def _bad_nan() -> np.ndarray:
    x = _patch(99)
    x[4, 5, 3] = np.nan
    return x


def _bad_inf() -> np.ndarray:
    x = _patch(99)
    x[0, 0, 10] = -np.inf
    return x


BAD_CASES = {
    "name": ("0_aletsch_ice.tif", lambda: _patch(99), "fields"),
    "class": ("0_aletsch_2019_p1_rock.tif", lambda: _patch(99), "unknown class 'rock'"),
    "bands": ("0_aletsch_2019_p1_ice.tif", lambda: _patch(99, (33, 33, 10)), "has 10 bands"),
    "size": ("0_aletsch_2019_p1_ice.tif", lambda: _patch(99, (32, 33, 11)), "is 32 x 33"),
    "nan": ("0_aletsch_2019_p1_ice.tif", _bad_nan, "1 NaN/inf values (bands: nir)"),
    "inf": ("0_aletsch_2019_p1_ice.tif", _bad_inf, "1 NaN/inf values (bands: proximity)"),
    "unreadable": ("0_aletsch_2019_p1_ice.tif", None, "unreadable"),
}


@pytest.mark.parametrize("case", list(BAD_CASES))
def test_bad_input(case, tmp_path, capsys):
    name, make, problem = BAD_CASES[case]
    folder = tmp_path / "data"
    folder.mkdir()
    good = ["0_aletsch_2019_p0_ice.tif", "1_hef_2020_p2_snow.tif"]
    for i, g in enumerate(good):
        write_patch(folder / g, _patch(i))
    if make is None:
        (folder / name).write_bytes(b"this is not a GeoTIFF")
    else:
        write_patch(folder / name, make())

    with pytest.raises(PatchError) as err:
        load_patches(folder)
    assert name in str(err.value) and problem in str(err.value)

    report = tmp_path / "skipped.csv"
    ps = load_patches(folder, skip_invalid=True, report=report)
    assert ps.meta["file"].tolist() == good
    assert ps.skipped["file"].tolist() == [name]
    assert problem in ps.skipped["problem"].iloc[0]
    df = pd.read_csv(report)
    assert df["file"].tolist() == [name] and problem in df["problem"].iloc[0]

    out = tmp_path / "p.h5"
    assert main(["pack", str(folder), str(out)]) == 1
    err_text = capsys.readouterr().err
    assert name in err_text and "Traceback" not in err_text
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == [
        "data",
        "skipped.csv",
    ]
    assert main(["pack", str(folder), str(out), "--skip-invalid"]) == 0
    assert load_patches(out).meta["file"].tolist() == good
    cli_report = pd.read_csv(skip_report_path(out))
    assert skip_report_path(out).name == "p.skipped.csv"
    assert cli_report["file"].tolist() == [name]


# --------------------------------------------------------------------------- training input


def test_sample_weights_hand_computed():
    labels = [0, 1, 1, 1, 2]
    glaciers = ["a", "a", "a", "b", "b"]
    dates = ["d1", "d1", "d2", "d2", "d2"]
    # class counts 1, 3, 1 -> 5, 5/3, 5/3, 5/3, 5; scenes (a,d1)=2 (a,d2)=1 (b,d2)=2
    # -> 5/2, 5/2, 5, 5/2, 5/2
    expected = [12.5, 25 / 6, 25 / 3, 25 / 6, 12.5]
    w = sample_weights(labels, glaciers, dates)
    assert w.dtype == np.float32 and w.shape == (5,)
    np.testing.assert_allclose(w, expected, rtol=1e-6)
    with pytest.raises(ValueError, match="differ in length"):
        sample_weights(labels, glaciers[:4], dates)


def _dihedral(x: np.ndarray) -> list[np.ndarray]:
    """The 8 flip/rotation variants of a patch (H, W, C)."""
    out = []
    for base in (x, x[:, ::-1]):
        out += [np.rot90(base, k, axes=(0, 1)) for k in range(4)]
    return out


def test_augment_is_flip_rot_contrast_brightness():
    x = np.random.default_rng(0).random((32, 33, 33, 3), dtype=np.float32)
    out = augment(x, seed=[1, 2]).numpy()
    assert out.shape == x.shape
    np.testing.assert_array_equal(out, augment(x, seed=[1, 2]).numpy())
    assert not np.allclose(out, augment(x, seed=[3, 4]).numpy())
    assert augment(x[0], seed=[1, 2]).shape == x[0].shape

    used = set()
    for i in range(len(x)):
        m = x[i].mean(axis=(0, 1))
        o = out[i]
        fits = []
        for t, v in enumerate(_dihedral(x[i])):
            c = v - m
            oc = o - o.mean(axis=(0, 1))
            f = float((oc * c).sum() / (c * c).sum())
            if np.allclose(oc, f * c, atol=1e-5):
                fits.append((t, f, o.mean(axis=(0, 1)) - m))
        assert len(fits) == 1, f"patch {i}: not a unique flip/rotation of its input"
        t, f, d = fits[0]
        used.add(t)
        assert 0.95 <= f <= 1.05
        assert np.ptp(d) < 1e-5 and -0.01 <= d[0] <= 0.01  # one delta for all channels
    assert len(used) >= 4  # flips and rotations do vary


def _batches(ds) -> list[tuple[np.ndarray, ...]]:
    return [tuple(t.numpy() for t in b) for b in ds]


def test_validation_dataset_is_identity():
    n = 10
    x = np.random.default_rng(1).random((n, 33, 33, 4), dtype=np.float32)
    y = np.array([0, 1, 2, 3, 4, 5, 6, 7, 0, 1])
    w = np.linspace(0.5, 2.0, n).astype(np.float32)
    batches = _batches(make_tf_dataset(x, y, w, training=False, batch_size=4))
    assert [len(b[0]) for b in batches] == [4, 4, 2]
    np.testing.assert_array_equal(np.concatenate([b[0] for b in batches]), x)
    np.testing.assert_array_equal(np.concatenate([b[1] for b in batches]), np.eye(N_CLASSES)[y])
    np.testing.assert_array_equal(np.concatenate([b[2] for b in batches]), w)
    no_w = _batches(make_tf_dataset(x, y, batch_size=16))
    assert len(no_w) == 1 and len(no_w[0]) == 2


def test_training_dataset_smoothing_shuffle_pairing():
    n = 40
    # constant patches keep their value under flips/rotations/contrast, + delta <= 0.01
    x = np.broadcast_to(np.arange(n, dtype=np.float32)[:, None, None, None], (n, 33, 33, 2))
    y = np.arange(n) % N_CLASSES
    w = np.arange(n, dtype=np.float32) * 0.5
    ds = make_tf_dataset(x, y, w, training=True, batch_size=16, seed=7)
    epoch1, epoch2 = _batches(ds), _batches(ds)
    xb = np.concatenate([b[0] for b in epoch1])
    yb = np.concatenate([b[1] for b in epoch1])
    wb = np.concatenate([b[2] for b in epoch1])
    assert xb.shape == (n, 33, 33, 2) and yb.shape == (n, N_CLASSES)
    ids = np.rint(xb[:, 0, 0, 0]).astype(int)
    assert sorted(ids) == list(range(n))
    assert not np.array_equal(ids, np.arange(n))  # shuffled
    assert np.abs(xb - ids[:, None, None, None]).max() <= 0.01 + 1e-6
    np.testing.assert_allclose(wb, w[ids])  # labels and weights stay with their patch
    expected = np.full((n, N_CLASSES), 0.1 / 8, np.float32)
    expected[np.arange(n), y[ids]] = 0.9 + 0.1 / 8
    np.testing.assert_allclose(yb, expected, rtol=1e-6)
    ids2 = np.rint(np.concatenate([b[0] for b in epoch2])[:, 0, 0, 0]).astype(int)
    assert not np.array_equal(ids, ids2)  # reshuffled each epoch
    again = _batches(make_tf_dataset(x, y, w, training=True, batch_size=16, seed=7))
    np.testing.assert_array_equal(np.concatenate([b[0] for b in again]), xb)  # reproducible
