"""glacier_outlines.ipynb runs headless on the tiny dataset with the tests' trained model."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import papermill
import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_notebook_runs_and_writes_scores_and_figures(ol_data, ol_model, tmp_path):
    results = tmp_path / "results"
    papermill.execute_notebook(
        str(ROOT / "glacier_outlines.ipynb"), str(tmp_path / "out.ipynb"), cwd=str(ROOT),
        parameters={"data_dir": str(ol_data), "model_path": str(ol_model),
                    "results_dir": str(results), "n_figure_scenes": 2},
        progress_bar=False)
    table = pd.read_csv(results / "outline_val_counts.csv")
    assert len(table) == 2 and (table.model_tp + table.model_fn > 0).all()
    for stem in ("outline_training", "outline_validation_scenes", "outline_polygons"):
        assert (results / f"{stem}.png").stat().st_size > 10_000
        assert (results / f"{stem}.pdf").exists()
