"""Out-of-sample regressions on hand-made tables with answers worked out by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from utils.massbalance import MassBalanceError, evaluate, plot_scatter, scores


def test_scores_by_hand():
    s = scores(np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 4.0]))
    assert s["n"] == 3
    assert s["bias_mwe"] == pytest.approx(-1 / 3)
    assert s["rmse_mwe"] == pytest.approx(np.sqrt(1 / 3))
    assert s["r"] == pytest.approx(0.9819805060619657)
    assert 0 < s["p_value"] < 1


def _three_glaciers() -> pd.DataFrame:
    # balance = aar + offset, offsets 0, 1, 2 for glaciers A, B, C
    return pd.DataFrame({"glacier": list("AABBCC"), "year": [1, 2] * 3,
                         "aar": [0.0, 1.0] * 3, "balance_mwe": [0.0, 1, 1, 2, 2, 3]})


def test_leave_one_glacier_out_by_hand():
    # without A the fit through B and C is b = aar + 1.5: A is predicted 1.5 too high;
    # without B: b = aar + 1 (exact for B); without C: b = aar + 0.5 (1.5 too low)
    ev = evaluate(_three_glaciers(), ["aar"], min_years=2)
    p = ev.predictions[ev.predictions["scheme"] == "pooled_logo"]
    np.testing.assert_allclose(p["predicted"], [1.5, 2.5, 1, 2, 0.5, 1.5])
    s = ev.scores.loc["pooled_logo"]
    assert s["n"] == 6 and s["n_glaciers"] == 3
    assert s["rmse_mwe"] == pytest.approx(np.sqrt(1.5))
    assert s["bias_mwe"] == pytest.approx(0.0, abs=1e-12)
    r = np.corrcoef([1.5, 2.5, 1, 2, 0.5, 1.5], [0, 1, 1, 2, 2, 3])[0, 1]
    assert s["r"] == pytest.approx(r)
    # in sample the pooled line is b = aar + 1: errors -1, 0, +1 per glacier
    assert ev.scores.loc["pooled_insample", "rmse_mwe"] == pytest.approx(np.sqrt(2 / 3))


def test_leave_one_year_out_by_hand():
    # glacier A: aar 0, 1, 2 with balance 0, 1, 3; leaving out each year in turn the
    # line through the other two predicts -1, 1.5, 2: errors -1, +0.5, -1
    t = pd.DataFrame({"glacier": ["A"] * 3 + ["B"] * 3 + ["C"] * 3, "year": [1, 2, 3] * 3,
                      "aar": [0.0, 1, 2] * 3, "balance_mwe": [0.0, 1, 3] + [5.0, 6, 8] + [1, 2, 4]})
    ev = evaluate(t, ["aar"], min_years=3)
    p = ev.predictions[(ev.predictions["scheme"] == "specific_loyo")
                       & (ev.predictions["glacier"] == "A")]
    np.testing.assert_allclose(p["predicted"], [-1.0, 1.5, 2.0])
    per = ev.per_glacier.set_index("glacier")
    assert per.loc["A", "rmse_mwe"] == pytest.approx(np.sqrt(0.75))
    assert per.loc["A", "bias_mwe"] == pytest.approx(-0.5)
    assert per.loc["B", "bias_mwe"] == pytest.approx(-0.5)  # same shape, shifted
    assert ev.scores.loc["specific_loyo", "n"] == 9


def test_glaciers_with_too_few_years_have_no_own_model():
    t = _three_glaciers()
    ev = evaluate(t, ["aar"], min_years=3)
    assert ev.scores.loc["specific_loyo", "n"] == 0
    assert ev.scores.loc["pooled_logo", "n"] == 6


def test_missing_values_are_not_used_and_too_few_glaciers_raise():
    t = _three_glaciers()
    t.loc[0, "aar"] = np.nan
    assert evaluate(t, ["aar"], min_years=2).scores.loc["pooled_logo", "n"] == 5
    with pytest.raises(MassBalanceError, match="at least 3"):
        evaluate(t[t["glacier"] != "C"], ["aar"])
    with pytest.raises(MassBalanceError, match="sla_m"):
        evaluate(t, ["sla_m"])


def test_scatter_shows_the_scores():
    ev = evaluate(_three_glaciers(), ["aar"], min_years=2)
    fig = plot_scatter(ev, "pooled_logo")
    text = " ".join(t.get_text() for t in fig.axes[0].texts)
    assert "RMSE = 1.22 m w.e." in text and "n = 6" in text
    assert len(fig.axes[0].collections) == 3  # one colour per glacier
