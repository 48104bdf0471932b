"""The study's focal loss."""

from __future__ import annotations

from collections.abc import Sequence

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="glacier_facies")
class FocalLoss(keras.losses.Loss):
    """Categorical focal loss, summed over classes per sample.

    loss = -sum_c alpha_c * (1 - p_c)**gamma * y_c * log(p_c), with p clipped to
    [eps, 1 - eps]. ``y_true`` and ``y_pred`` are (B, C); ``alpha`` is None
    (all 1) or C per-class factors.
    """

    def __init__(
        self,
        gamma: float = 2.0,
        alpha: Sequence[float] | None = None,
        epsilon: float = 1e-7,
        name: str = "focal_loss",
        **kwargs,
    ) -> None:
        super().__init__(name=name, **kwargs)
        self.gamma = float(gamma)
        self.alpha = None if alpha is None else [float(a) for a in alpha]
        self.epsilon = float(epsilon)

    def call(self, y_true, y_pred):
        y_true = ops.cast(y_true, y_pred.dtype)
        p = ops.clip(y_pred, self.epsilon, 1.0 - self.epsilon)
        term = -y_true * ops.power(1.0 - p, self.gamma) * ops.log(p)
        if self.alpha is not None:
            term = term * ops.convert_to_tensor(self.alpha, dtype=y_pred.dtype)
        return ops.sum(term, axis=-1)

    def get_config(self) -> dict:
        return {**super().get_config(), "gamma": self.gamma, "alpha": self.alpha,
                "epsilon": self.epsilon}
