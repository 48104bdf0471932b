"""The study's compact CNN, and reading/writing its legacy Keras ``.h5`` weights.

The network classifies the centre pixel of an (H, W, F) patch (H = W = 33 in
the study): two stages of three 3x3 convolutions, a centre-cell tap after each
stage, a global max over the second stage, and a small dense head.
"""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import keras
import numpy as np

from utils.errors import WeightsError
from utils.study import N_CLASSES

FILTERS = 64
DENSE_UNITS = 32
DROPOUT = 0.5
#: Weighted layers in the order the study's files store them.
WEIGHTED_LAYERS = ("conv", "bn") * 6 + ("dense",) * 3


@keras.saving.register_keras_serializable(package="glacier_facies")
class CentreCell(keras.layers.Layer):
    """Features of the centre cell (H//2, W//2) of a (B, H, W, C) map -> (B, C)."""

    def call(self, x):
        shape = keras.ops.shape(x)
        return x[:, shape[1] // 2, shape[2] // 2, :]

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[3])


def build_cnn_model(
    input_features: int,
    n_classes: int = N_CLASSES,
    latent: bool = False,
) -> keras.Model:
    """Build the study's CNN for inputs (None, None, ``input_features``).

    Returns a model mapping patches (B, H, W, F) (H, W odd, >= 9) to softmax
    probabilities (B, n_classes); with ``latent=True`` it also returns the
    192-vector [c1, c2, global max] after dropout.
    """
    elu = keras.layers.ELU()  # one shared activation layer, as in the study
    inputs = keras.Input(shape=(None, None, input_features))

    def stage(x):
        for _ in range(3):
            x = keras.layers.Conv2D(FILTERS, 3, padding="same")(x)
            x = keras.layers.BatchNormalization()(x)
            x = elu(x)
        return x

    s1 = stage(inputs)
    c1 = CentreCell()(s1)
    s2 = stage(keras.layers.MaxPooling2D(pool_size=3, strides=3, padding="valid")(s1))
    c2 = CentreCell()(s2)
    g = keras.layers.GlobalMaxPooling2D()(s2)
    z = keras.layers.Dropout(DROPOUT)(keras.layers.Concatenate()([c1, c2, g]))
    x = z
    for _ in range(2):
        x = keras.layers.Dropout(DROPOUT)(elu(keras.layers.Dense(DENSE_UNITS)(x)))
    probs = keras.layers.Dense(n_classes, activation="softmax")(x)
    return keras.Model(inputs, [probs, z] if latent else probs, name="facies_cnn")


def _weighted_layers(model: keras.Model) -> list[keras.layers.Layer]:
    """The model's layers with weights, in the study's storage order."""
    return [layer for layer in model.layers if layer.weights]


def read_weight_arrays(path: str | os.PathLike) -> list[list[np.ndarray]]:
    """Read a legacy Keras ``.h5`` weight file: per weighted layer, its arrays in order.

    Layers are taken in the file's ``layer_names`` order, names ignored.
    """
    path = Path(path)
    expected = (
        "expected a Keras .h5 weight file of the facies CNN (root attribute 'layer_names'; "
        "6 convolution + batch-normalisation pairs, then 3 dense layers)"
    )
    if not path.is_file():
        raise WeightsError(f"{path}: file not found; {expected}")
    try:
        with h5py.File(path, "r") as f:
            root = f["model_weights"] if "model_weights" in f else f
            if "layer_names" not in root.attrs:
                raise WeightsError(f"{path}: no 'layer_names' attribute; {expected}")
            layers = []
            for name in root.attrs["layer_names"]:
                name = name.decode() if isinstance(name, bytes) else str(name)
                group = root[name]
                names = [w.decode() if isinstance(w, bytes) else str(w)
                         for w in group.attrs.get("weight_names", [])]
                if names:
                    layers.append([np.asarray(group[w]) for w in names])
    except WeightsError:
        raise
    except (OSError, KeyError, ValueError) as err:
        raise WeightsError(f"{path}: cannot read as HDF5 weights ({err}); {expected}") from None
    sizes = [len(a) for a in layers]
    if sizes != [2, 4] * 6 + [2] * 3:
        raise WeightsError(
            f"{path}: found {len(layers)} weighted layers with {sizes} arrays; {expected}"
        )
    return layers


def load_model(path: str | os.PathLike, latent: bool = False) -> keras.Model:
    """Build the CNN for the feature count in ``path`` and load its weights by layer order."""
    arrays = read_weight_arrays(path)
    kernel = arrays[0][0]
    if kernel.ndim != 4 or kernel.shape[:2] != (3, 3) or kernel.shape[3] != FILTERS:
        raise WeightsError(
            f"{path}: first convolution kernel has shape {kernel.shape}, expected (3, 3, F, 64)"
        )
    n_classes = arrays[-1][1].shape[0]
    model = build_cnn_model(kernel.shape[2], n_classes=n_classes, latent=latent)
    for layer, values in zip(_weighted_layers(model), arrays, strict=True):
        expected = [tuple(w.shape) for w in layer.weights]
        got = [v.shape for v in values]
        if expected != got:
            raise WeightsError(
                f"{path}: layer {layer.name} expects weights of shapes {expected}, file has {got}"
            )
        layer.set_weights(values)
    return model


#: Models kept by :func:`kept_model`, by (resolved path, modification time).
_KEPT: dict[tuple[str, int], keras.Model] = {}
KEPT_MODELS = 4


def kept_model(path: str | os.PathLike) -> keras.Model:
    """:func:`load_model`, kept per weights file for repeated use in one process.

    Mapping many scenes with one model (the batch run, the demo's year series) then
    loads it once, and the inference engines' compiled functions, which are kept per
    model object, are traced once. A changed file (modification time) is reloaded;
    at most :data:`KEPT_MODELS` models are kept.
    """
    p = Path(path)
    key = (str(p.resolve()), p.stat().st_mtime_ns)
    if key not in _KEPT:
        model = load_model(p)
        while len(_KEPT) >= KEPT_MODELS:
            _KEPT.pop(next(iter(_KEPT)))
        _KEPT[key] = model
    return _KEPT[key]


def input_features(model: keras.Model) -> int:
    """Number of input feature channels F of a model."""
    return int(model.inputs[0].shape[-1])


def save_weights(model: keras.Model, path: str | os.PathLike) -> None:
    """Write weights in the legacy Keras 2 ``.h5`` layout the study's files use.

    One HDF5 group per weighted layer holding ``<layer>/<weight>:0`` datasets and
    a ``weight_names`` attribute; the root attribute ``layer_names`` lists the
    groups in load order. Written to a temporary file, then renamed.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    counters = {"conv": 0, "bn": 0, "dense": 0}
    prefixes = {"conv": "conv2d", "bn": "batch_normalization", "dense": "dense"}
    short = {"conv": ("kernel", "bias"), "bn": ("gamma", "beta", "moving_mean",
             "moving_variance"), "dense": ("kernel", "bias")}
    try:
        with h5py.File(tmp, "w") as f:
            f.attrs["backend"] = "tensorflow"
            f.attrs["keras_version"] = keras.__version__
            names = []
            for kind, layer in zip(WEIGHTED_LAYERS, _weighted_layers(model), strict=True):
                i = counters[kind]
                counters[kind] += 1
                lname = prefixes[kind] + (f"_{i}" if i else "")
                names.append(lname)
                group = f.create_group(lname)
                wnames = [f"{lname}/{w}:0" for w in short[kind]]
                for wname, value in zip(wnames, layer.get_weights(), strict=True):
                    group.create_dataset(wname, data=value)
                group.attrs["weight_names"] = np.array([w.encode() for w in wnames])
            f.attrs["layer_names"] = np.array([n.encode() for n in names])
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
