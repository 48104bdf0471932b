"""Mass balance from facies maps: WGMS records, glacier time series, out-of-sample regressions.

- :mod:`~utils.massbalance.wgms`: readers for WGMS records as published (FoG
  overview with observed AAR and ELA, id lookup, ``mbdata`` annual balances,
  RGI 6.0 links) and the glacier-year table they make;
- :mod:`~utils.massbalance.series`: per-scene statistics CSVs -> one tidy table
  keyed by (RGIId, date); end-of-season pick per glacier and hydrological year;
- :mod:`~utils.massbalance.regression`: balance ~ predictors, pooled
  leave-one-glacier-out and glacier-specific leave-one-year-out;
- :mod:`~utils.massbalance.demo`: real WGMS glacier-years for the demo and
  :func:`run_demo`.

Every reader returns a *dropped* table besides its result: nothing is left out silently.
"""

from utils.massbalance.common import MassBalanceError
from utils.massbalance.regression import Evaluation, evaluate, plot_scatter, scores
from utils.massbalance.series import collect_series, end_of_season, plot_series
from utils.massbalance.wgms import glacier_years, join_balances, rgi_links

__all__ = ["Evaluation", "MassBalanceError", "collect_series", "end_of_season", "evaluate",
           "glacier_years", "join_balances", "plot_scatter", "plot_series", "rgi_links",
           "run_demo", "scores"]


def __getattr__(name: str):
    if name == "run_demo":  # lazy: the demo pulls in rasterio and the mapping code
        from utils.massbalance.demo import run_demo

        return run_demo
    raise AttributeError(name)
