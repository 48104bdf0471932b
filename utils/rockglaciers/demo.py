"""Synthetic rock-glacier tiles, masks and a scene, and the end-to-end demo.

The imagery is drawn, not observed: bare mountain terrain (fractal relief,
hill-shaded, grey-brown rock, a little snow) and rock glaciers as lobate tongues
with ridge-and-furrow arcs convex downslope and a shaded steep front. It exercises
the code (readers in both layouts, grouping, training, calibration, evaluation,
scene maps, segmentation); its scores say nothing about real rock glaciers.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import rasterio
from PIL import Image
from rasterio.transform import from_origin
from scipy import ndimage

from utils.rockglaciers.tiles import TILE

CANVAS = 192  # one rock glacier (or one run of terrain) is cropped from this canvas


def _relief(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Fractal relief (h, w), ~unit range: octaves of smoothed white noise."""
    z = np.zeros((h, w))
    for sigma, amp in ((24, 1.0), (10, 0.5), (4, 0.25), (1.5, 0.12)):
        z += amp * ndimage.gaussian_filter(rng.standard_normal((h, w)), sigma) * sigma
    return z / (np.abs(z).max() + 1e-9)


def terrain(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Hill-shaded rock terrain (h, w, 3) float 0..255 with some snow patches."""
    z = _relief(rng, h, w) * 60
    gy, gx = np.gradient(z)
    az = rng.uniform(0, 2 * np.pi)
    shade = np.clip(0.6 + 0.35 * (np.cos(az) * gx + np.sin(az) * gy) / 3, 0.15, 1.0)
    rock = np.array([118, 108, 98]) * rng.uniform(0.8, 1.3) + rng.normal(0, 3, 3)
    img = shade[..., None] * rock
    snow = _relief(rng, h, w) > rng.uniform(0.35, 0.8)
    img[snow] = 0.3 * img[snow] + 0.7 * np.array([235, 238, 245])
    return img


def draw_rock_glacier(rng: np.random.Generator, img: np.ndarray, cy: float, cx: float
                      ) -> np.ndarray:
    """Draw one lobate rock glacier centred near (cy, cx) into ``img``; returns its mask."""
    h, w = img.shape[:2]
    length, width = rng.uniform(60, 100), rng.uniform(30, 50)
    ang = rng.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    u = (xx - cx) * np.cos(ang) + (yy - cy) * np.sin(ang) + length / 2  # downslope
    v = -(xx - cx) * np.sin(ang) + (yy - cy) * np.cos(ang)
    body = (u - (length - width / 2)) ** 2 + v**2 < (width / 2) ** 2
    lobe = (u >= 0) & (u <= length - width / 2) & (np.abs(v) < width / 2 * (0.7 + 0.3 * u
                                                                              / length))
    mask = body | lobe
    s = u + 0.8 * v**2 / width  # arcs convex downslope
    ridges = np.sin(2 * np.pi * s / rng.uniform(6, 10))
    debris = np.array([128, 116, 104]) * rng.uniform(0.85, 1.1)
    inner = ndimage.binary_erosion(mask, iterations=2)
    front = mask & ~inner & (u > length / 2)
    tex = debris * (0.8 + 0.15 * ridges[..., None] + rng.normal(0, 0.04, (h, w, 1)))
    img[mask] = 0.15 * img[mask] + 0.85 * tex[mask]
    img[front] *= 0.55
    return mask


def make_canvas(rng: np.random.Generator, rock_glacier: bool,
                size: int = CANVAS) -> tuple[np.ndarray, np.ndarray]:
    """One canvas (size, size, 3) uint8 and its mask (size, size) uint8 0/1."""
    img = terrain(rng, size, size)
    mask = np.zeros((size, size), bool)
    if rock_glacier:
        mask = draw_rock_glacier(rng, img, size / 2 + rng.uniform(-8, 8),
                                 size / 2 + rng.uniform(-8, 8))
    return np.clip(img, 0, 255).astype(np.uint8), mask.astype(np.uint8)


def _crops(rng: np.random.Generator, n: int, size: int = CANVAS) -> list[tuple[int, int]]:
    return [(int(rng.integers(0, size - TILE + 1)), int(rng.integers(0, size - TILE + 1)))
            for _ in range(n)]


def write_tiles(folder: Path, n_groups: int = 12, per_group: int = 4, seed: int = 0,
                masks: bool = False) -> Path:
    """Write demo tiles in the file-name layout (or, with ``masks``, the segmentation layout).

    ``n_groups`` rock glaciers (``glaciarRoca_demo_<k>_<n>.png``) and as many runs of
    ``per_group`` consecutive ``cordillera_<n>.png``, overlapping crops of one canvas
    each. With ``masks``: ``images/`` and ``masks/`` (0/1 PNG) of rock-glacier tiles only.
    """
    rng = np.random.default_rng(seed)
    folder = Path(folder)
    (folder / "images" if masks else folder).mkdir(parents=True, exist_ok=True)
    n_cord = 0
    for k in range(n_groups):
        for rock in (True,) if masks else (True, False):
            img, mask = make_canvas(rng, rock)
            for j, (r, c) in enumerate(_crops(rng, per_group)):
                tile = img[r:r + TILE, c:c + TILE]
                if masks:
                    (folder / "masks").mkdir(exist_ok=True)
                    name = f"glaciarRoca_demo_{k}_{j}.png"
                    Image.fromarray(tile).save(folder / "images" / name)
                    Image.fromarray(mask[r:r + TILE, c:c + TILE]).save(folder / "masks" / name)
                elif rock:
                    Image.fromarray(tile).save(folder / f"glaciarRoca_demo_{k}_{j}.png")
                else:
                    Image.fromarray(tile).save(folder / f"cordillera_{n_cord}.png")
                    n_cord += 1
            n_cord += 1 if not rock else 0  # a gap ends the run
    return folder


def write_scene(path: Path, size: int = 512, n_rock_glaciers: int = 4, seed: int = 0
                ) -> np.ndarray:
    """Demo 8-bit RGB GeoTIFF (EPSG:32719, 10 m, Andes-like origin); returns its mask."""
    rng = np.random.default_rng(seed)
    img = terrain(rng, size, size)
    mask = np.zeros((size, size), bool)
    for _ in range(n_rock_glaciers):
        cy, cx = rng.uniform(70, size - 70, 2)
        mask |= draw_rock_glacier(rng, img, cy, cx)
    data = np.moveaxis(np.clip(img, 0, 255).astype(np.uint8), -1, 0)
    profile = {"driver": "GTiff", "height": size, "width": size, "count": 3, "dtype": "uint8",
               "crs": "EPSG:32719", "transform": from_origin(390000, 6310000, 10, 10)}
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
    return mask


def run_demo(out_dir: Path, seed: int = 0, epochs: int = 15, progress: bool = False) -> dict:
    """Generate demo data in ``out_dir``, run the rock-glacier chain, return key numbers.

    Steps: tiles (train, test, masks) and a scene; 2-fold grouped CV with baselines;
    a final classifier (saved with its calibrator) scored on the test tiles; a
    probability map with polygons; a small U-Net on the masks. ~40 s of CPU time.
    """
    from utils.rockglaciers.classifier import fit_probability_calibrator, save_classifier
    from utils.rockglaciers.classifier import train_classifier as train
    from utils.rockglaciers.evaluation import cross_validate, evaluate_folder, summary
    from utils.rockglaciers.scene import map_scene
    from utils.rockglaciers.segmentation import evaluate_segmenter, read_masks, train_segmenter
    from utils.rockglaciers.tiles import read_tiles

    t0 = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tiles = read_tiles(write_tiles(out / "tiles_train", 12, 4, seed))
    test = write_tiles(out / "tiles_test", 4, 4, seed + 1)
    write_scene(out / "scene_rgb.tif", seed=seed)
    train_kw = dict(epochs=epochs, batch=8, learning_rate=5e-3)  # few tiles: small, fast steps
    scores, oof = cross_validate(tiles, k=2, seed=seed, progress=progress, **train_kw)
    s = summary(scores)
    model, _ = train(tiles.images, tiles.labels, seed=seed, progress=progress, **train_kw)
    cal = fit_probability_calibrator(oof.cnn.to_numpy(), oof.label.to_numpy())
    model_path = save_classifier(model, cal, out / "rock_glacier_cnn.keras", overwrite=True)
    held = evaluate_folder(model_path, test)
    scene = map_scene(model_path, out / "scene_rgb.tif", out / "rock_glacier_probability.tif",
                      out / "rock_glaciers.gpkg", overwrite=True, progress=progress)
    seg_train = read_masks(write_tiles(out / "masks_train", 8, 4, seed + 2, masks=True))
    seg_test = read_masks(write_tiles(out / "masks_test", 3, 4, seed + 3, masks=True))
    unet = train_segmenter(seg_train.images, seg_train.masks, epochs=10, batch=4,
                           seed=seed, progress=progress)
    seg = evaluate_segmenter(unet, seg_test.images, seg_test.masks)
    return {
        "cv_balanced_accuracy_cnn": float(s.loc["cnn", "balanced_accuracy_mean"]),
        "cv_balanced_accuracy_histogram": float(s.loc["histogram", "balanced_accuracy_mean"]),
        "cv_ece_cnn_calibrated": float(s.loc["cnn_calibrated", "ece_mean"]),
        "test_balanced_accuracy": held["balanced_accuracy"],
        "scene_cells_above_0.5": scene["cells_above_threshold"],
        "scene_polygons": scene["polygons"],
        "segmentation_iou": seg["iou"], "segmentation_f1": seg["f1"],
        "seconds": time.perf_counter() - t0, "out_dir": str(out),
    }
