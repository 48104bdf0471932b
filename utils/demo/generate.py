"""Synthetic but physically plausible demo dataset in the study's layout.

``python -m utils.demo.generate OUT_DIR [--seed N] [--size SIZE] [--overwrite]``
or :func:`generate`. The same seed and size give byte-identical files.

What is simulated (details in each module): the world, per scene, a few km of a
mountain massif with valley glaciers on a real UTM grid, 10 m pixels
(:mod:`utils.demo.world`, random fields in :mod:`utils.demo.fields`); per date,
the facies, illumination, spectra (:mod:`utils.demo.spectra`), clouds and the
sensor (:mod:`utils.demo.acquisition`); labelled points with 10-15 % of the
facies labels flipped among plausible confusions (:mod:`utils.demo.labels`,
listed in ``planted_noise.csv``; file names carry the flipped, given class).
This module assembles them into the dataset folder; :mod:`utils.demo.writer`
writes its files.

Layout (details in :data:`utils.demo.writer.README_TEXT`, written as
``OUT_DIR/README.txt``): ``patches/{fold}_{glacier}_{date}_{id}_{class}.tif``
(33 x 33 x 11 float32, the scene's UTM CRS), ``stats.json``,
``planted_noise.csv`` and one folder per scene and date,
``scenes/<scene>_<date>/`` (several glaciers share a scene, e.g. ``alps1`` holds
``alps1-a`` and ``alps1-b``) with ``optical.tif``, ``dem.tif``, ``truth.tif``,
``outlines.geojson`` and ``points.geojson`` (both EPSG:4326) and ``scene.json``
(sun angles for the shadow mask and hillshade).

Sizes: ``tiny`` (CI) 3 scenes of 256 x 256 px x 2 dates, 6 glaciers, ~380 patches,
a few seconds; ``compact`` 4 scenes of 384 px x 3 dates, ~790 patches; ``medium``
6 scenes of 512 px, ~1,800 patches; ``small`` 6 scenes of 512 x 512 px x 3 dates, 14
glaciers, ~3400 patches, ~20-40 s and ~230 MB. ``make demo`` picks the largest
that fits its time budget on the machine at hand (:mod:`utils.demo.driver`).

The folder is built under a temporary name beside ``OUT_DIR`` and renamed when
complete. Bad requests (size, seed, an output folder that cannot be written)
raise :class:`utils.errors.InputError` subclasses before any work; the CLI prints
them as one line and exits with status 2.
"""

from __future__ import annotations

import argparse
import csv
import errno
import io
import numbers
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from affine import Affine
from pyproj import Transformer
from scipy import ndimage

from utils.cli import run_cli
from utils.demo.acquisition import acquire
from utils.demo.labels import NOISE_RATE, flip_labels, sample_points
from utils.demo.world import HALF, REGIONS, Scene, make_scene
from utils.demo.writer import (
    GTIFF_PATCH,
    MARKER,
    README_TEXT,
    outline_features,
    round_coords,
    write_scene,
    write_text,
    write_tif,
)
from utils.errors import InputError, OutputError, OutputExistsError
from utils.files import sigterm_cleans_up
from utils.normalisation import Stats, save_stats, stats_from_array
from utils.study import CLASSES, FACIES_CLASSES, FEATURES, N_FOLDS

PROG = "python -m utils.demo.generate"


class DemoError(InputError):
    """A demo-dataset request that cannot be honoured (size, seed, noise rate)."""


@dataclass(frozen=True)
class SizeSpec:
    """A dataset size: scene edge (pixels), scenes (region, glaciers), dates, points."""

    scene_px: int
    scenes: tuple[tuple[str, int], ...]
    date_indices: tuple[int, ...]
    points_per_glacier_date: int


# ``make demo`` picks the largest size its measured training speed allows
# (utils.demo.driver); ~patches = glaciers x dates x points.
SIZES: dict[str, SizeSpec] = {
    "tiny": SizeSpec(256, (("alps", 2), ("norway", 2), ("caucasus", 2)), (1, 2), 34),
    "compact": SizeSpec(384, (("alps", 2), ("norway", 2), ("caucasus", 2), ("alps", 2)),
                        (0, 1, 2), 34),
    "medium": SizeSpec(
        512,
        (("alps", 3), ("alps", 2), ("norway", 2), ("norway", 3), ("caucasus", 2), ("caucasus", 2)),
        (0, 1, 2),
        42,
    ),
    "small": SizeSpec(
        512,
        (("alps", 3), ("alps", 2), ("norway", 2), ("norway", 3), ("caucasus", 2), ("caucasus", 2)),
        (0, 1, 2),
        84,
    ),
}


# --------------------------------------------------------------------------- the folder


def check_out_dir(out_dir: str | os.PathLike, overwrite: bool = False) -> Path:
    """Check before any work that the dataset folder ``out_dir`` can be written.

    It may be missing (created with its missing parents), empty, or an earlier
    demo dataset (replaced); any other non-empty folder only with ``overwrite``.
    Raises OutputExistsError for an existing file or a foreign folder, OutputError
    when the nearest existing parent is not a writable folder. Returns the absolute
    path. (A name too long for the file system fails in :func:`_prepare_out`, also
    before any work: the temporary name is the longest one used.)
    """
    out_dir = Path(out_dir).absolute()
    if out_dir.exists():
        if not out_dir.is_dir():
            raise OutputExistsError(errno.EEXIST, "exists and is not a folder", str(out_dir))
        readme = out_dir / "README.txt"
        ours = readme.is_file() and readme.read_text(errors="replace").startswith(MARKER)
        if any(out_dir.iterdir()) and not (ours or overwrite):
            raise OutputExistsError(
                errno.EEXIST, "exists, is not empty and is not a demo dataset; choose "
                "another folder or pass overwrite to replace it", str(out_dir)
            ).about("overwrite")
    parent = out_dir.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise OutputError(errno.ENOTDIR, f"cannot be created: {parent} is a file, not a "
                          "folder", str(out_dir))
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(errno.EACCES, f"cannot be created: folder {parent} is not writable",
                          str(out_dir))
    return out_dir


def _temp_dir(out_dir: Path, kind: str) -> Path:
    """Hidden sibling of ``out_dir`` of this process (kind: "partial" or "old")."""
    return out_dir.parent / f".{out_dir.name}.{kind}-{os.getpid()}"


def _prepare_out(out_dir: Path) -> Path:
    """Create an empty temporary dataset folder (patches/, scenes/) beside ``out_dir``.

    Any failure (permissions, a name too long, ...) is an OutputError naming ``out_dir``.
    """
    tmp = _temp_dir(out_dir, "partial")
    try:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        if tmp.exists():
            shutil.rmtree(tmp)
        (tmp / "patches").mkdir(parents=True)
        (tmp / "scenes").mkdir()
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise OutputError(e.errno or errno.EACCES, f"cannot create the demo dataset: "
                          f"{e.strerror or e}", str(out_dir)) from e
    return tmp


def _finish_out(tmp: Path, out_dir: Path) -> None:
    """Replace ``out_dir`` (if any) by the complete folder ``tmp``."""
    old = None
    if out_dir.exists():
        old = _temp_dir(out_dir, "old")
        os.replace(out_dir, old)
    os.replace(tmp, out_dir)
    if old is not None:
        shutil.rmtree(old)


# --------------------------------------------------------------------------- the dataset


def generate(
    out_dir: str | os.PathLike,
    size: str = "small",
    seed: int = 0,
    noise_rate: float = NOISE_RATE,
    overwrite: bool = False,
    verbose: bool = False,
) -> dict:
    """Write the demo dataset to ``out_dir`` and return a summary dict.

    ``size`` is ``"tiny"`` (6 glaciers, ~400 patches, 256 px scenes, for CI) or
    ``"small"`` (14 glaciers, ~3500 patches, 512 px scenes); ``seed`` a
    non-negative integer; ``noise_rate`` the fraction of facies labels flipped
    (0..0.5). The folder is built under a temporary name beside ``out_dir`` and
    renamed when complete; an existing demo dataset there is replaced, any other
    non-empty folder only with ``overwrite``. Raises DemoError for a bad size,
    seed or rate and OutputError / OutputExistsError (see :func:`check_out_dir`),
    all before any work.
    """
    if size not in SIZES:
        raise DemoError(f"size must be one of {', '.join(SIZES)}, got {size!r}").about("size")
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise DemoError(f"seed must be a non-negative integer, got {seed!r}").about("seed")
    if not 0.0 <= noise_rate <= 0.5:
        raise DemoError(f"noise_rate must be within 0..0.5, got {noise_rate}").about("noise_rate")
    spec = SIZES[size]
    out_dir = Path(out_dir)
    t0 = time.perf_counter()
    target = check_out_dir(out_dir, overwrite)
    with sigterm_cleans_up():  # SIGTERM, like Ctrl-C, removes the temporary folder
        tmp = _prepare_out(target)
        try:
            summary = _generate_into(tmp, spec, size, int(seed), noise_rate, verbose)
            _finish_out(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    summary["out_dir"] = str(out_dir)
    summary["seconds"] = round(time.perf_counter() - t0, 1)
    return summary


def _generate_into(out: Path, spec: SizeSpec, size: str, seed: int, noise_rate: float,
                   verbose: bool) -> dict:
    """Build the dataset's files under ``out`` (patches/ and scenes/ exist); its summary."""
    n = spec.scene_px
    # scenes and their glaciers
    scenes: list[Scene] = []
    per_region: dict[str, int] = {}
    gid = 1
    for i, (region_name, n_glaciers) in enumerate(spec.scenes):
        region = REGIONS[region_name]
        per_region[region_name] = per_region.get(region_name, 0) + 1
        name = f"{region_name}{per_region[region_name]}"
        rng = np.random.default_rng([seed, 1, i])
        scenes.append(make_scene(rng, name, region, per_region[region_name], n, n_glaciers, gid))
        gid += n_glaciers
    glaciers = [g for s in scenes for g in s.glaciers]
    order = np.random.default_rng([seed, 2]).permutation(len(glaciers))
    for rank, gi in enumerate(order):
        glaciers[int(gi)].fold = rank % N_FOLDS

    counts = dict.fromkeys(CLASSES, 0)
    true_counts = dict.fromkeys(CLASSES, 0)
    fold_classes: dict[int, set[str]] = {f: set() for f in range(N_FOLDS)}
    fold_counts = dict.fromkeys(range(N_FOLDS), 0)
    noise_rows: list[tuple[str, str, str]] = []
    stats: Stats | None = None
    running_id = 0
    n_facies = 0
    n_acq = 0
    for si, scene in enumerate(scenes):
        crs = f"EPSG:{scene.region.epsg}"
        to_wgs = Transformer.from_crs(scene.region.epsg, 4326, always_xy=True)
        outlines = outline_features(scene, to_wgs)
        # catchments: pixels whose nearest glacier (within a buffer) is this one
        dists = np.stack([ndimage.distance_transform_edt(~g.mask) for g in scene.glaciers])
        nearest = np.argmin(dists, axis=0)
        buffer_px = 0.07 * n
        for di in spec.date_indices:
            rng = np.random.default_rng([seed, 3, si, di])
            acq = acquire(scene, di, rng)
            n_acq += 1
            folder = out / "scenes" / f"{scene.name}_{acq.date}"
            folder.mkdir()
            blocked = np.zeros((n, n), dtype=bool)
            point_feats = []
            patches = []
            for k, g in enumerate(scene.glaciers):
                catchment = (nearest == k) & (dists[k] <= buffer_px)
                pts = sample_points(scene, acq, g, catchment, blocked,
                                    spec.points_per_glacier_date, rng)
                true_idx = [p[2] for p in pts]
                given_idx = flip_labels(true_idx, rng, noise_rate)
                n_facies += sum(CLASSES[t] in FACIES_CLASSES for t in true_idx)
                for (r, c, t), gv in zip(pts, given_idx, strict=True):
                    running_id += 1
                    cname = CLASSES[gv]
                    fname = f"{g.fold}_{g.name}_{acq.date}_{running_id}_{cname}.tif"
                    patch = acq.features[r - HALF : r + HALF + 1, c - HALF : c + HALF + 1]
                    window = Affine.translation(c - HALF, r - HALF)
                    profile = dict(GTIFF_PATCH, crs=crs, transform=scene.transform @ window)
                    write_tif(out / "patches" / fname, patch, profile, FEATURES)
                    patches.append(patch)
                    counts[cname] += 1
                    true_counts[CLASSES[t]] += 1
                    fold_counts[g.fold] += 1
                    fold_classes[g.fold].add(cname)
                    if gv != t:
                        noise_rows.append((fname, CLASSES[t], cname))
                    x, y = scene.transform @ (c + 0.5, r + 0.5)
                    lon, lat = to_wgs.transform(x, y)
                    point_feats.append({
                        "type": "Feature",
                        "properties": {
                            "id": running_id, "class": cname, "fold": g.fold, "file": fname,
                            "glacier": g.name, "RGIId": g.rgi_id, "date": acq.date,
                            "row": r, "col": c, "x": float(x), "y": float(y),
                        },
                        "geometry": {"type": "Point",
                                     "coordinates": round_coords([float(lon), float(lat)])},
                    })
            if patches:
                part = stats_from_array(np.stack(patches))
                stats = part if stats is None else Stats(
                    np.minimum(stats.min, part.min), np.maximum(stats.max, part.max))
            write_scene(folder, scene, acq, outlines, point_feats, crs)
            if verbose:
                print(f"  {folder.name}: {len(patches)} patches", file=sys.stderr)

    if stats is None:
        raise RuntimeError("no patches were generated")
    missing = [c for c in CLASSES if counts[c] == 0]
    if missing:
        raise DemoError(f"seed {seed} gives data without the classes {missing}; "
                        "try another seed").about("seed")
    save_stats(stats, out / "stats.json")
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["file", "true_class", "given_class"])
    writer.writerows(noise_rows)
    write_text(out / "planted_noise.csv", buf.getvalue())
    write_text(out / "README.txt", README_TEXT.format(size=size, seed=seed))
    return {
        "size": size,
        "seed": seed,
        "n_patches": running_id,
        "n_glaciers": len(glaciers),
        "n_scenes": len(scenes),
        "n_acquisitions": n_acq,
        "scene_px": n,
        "class_counts": counts,
        "true_class_counts": true_counts,
        "fold_counts": {int(k): v for k, v in fold_counts.items()},
        "fold_classes": {int(k): sorted(v, key=CLASSES.index) for k, v in fold_classes.items()},
        "n_flipped": len(noise_rows),
        "flipped_fraction_of_facies": round(len(noise_rows) / max(n_facies, 1), 4),
    }


# --------------------------------------------------------------------------- CLI

def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 ok, 2 usage or input error)."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Write a synthetic glacier-facies dataset in the study's layout.",
    )
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--seed", type=int, default=0, help="non-negative integer (default 0)")
    parser.add_argument("--size", choices=sorted(SIZES), default="small")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace OUT_DIR even if it is not a demo dataset")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    code, s = run_cli(PROG, lambda: generate(args.out_dir, args.size, args.seed,
                                             overwrite=args.overwrite, verbose=args.verbose))
    if code:
        return code
    print(f"{s['out_dir']}: {s['n_patches']} patches, {s['n_glaciers']} glaciers, "
          f"{s['n_acquisitions']} scene dates ({s['size']}, seed {s['seed']}, {s['seconds']} s)")
    print("classes: " + ", ".join(f"{k} {v}" for k, v in s["class_counts"].items()))
    print("folds:   " + ", ".join(f"{k}: {v}" for k, v in s["fold_counts"].items()))
    print(f"planted noise: {s['n_flipped']} labels "
          f"({100 * s['flipped_fraction_of_facies']:.1f} % of facies labels)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
