"""The demo driver: the budget rule, the one-system run (mass balance) and its errors."""

from __future__ import annotations

import json

import pytest

from utils.demo import driver
from utils.demo.generate import SIZES


def test_plan_follows_the_budget_rule():
    """Faster machines get larger datasets; every plan fits the budget at >= MIN_EPOCHS,
    except on a machine too slow for tiny, which still runs 2 epochs."""
    sizes = sorted(SIZES, key=driver.approx_patches)
    assert sizes[0] == "tiny" and sizes[-1] == "small"
    last = len(sizes)
    for rate in (0.001, 0.002, 0.004, 0.008, 0.015, 0.03):
        rate = (rate, 1000 * rate)  # a model's start grows with the machine's slowness
        size, epochs = driver.plan(rate)
        n = driver.approx_patches(size)
        assert sizes.index(size) <= last  # never larger on a slower machine
        last = sizes.index(size)
        if epochs >= driver.MIN_EPOCHS:
            assert driver.MIN_EPOCHS <= epochs <= driver.MAX_EPOCHS
            assert driver.predicted_seconds(rate, n, epochs) <= driver.TRAIN_BUDGET_S
            bigger = [s for s in sizes if driver.approx_patches(s) > n]
            assert all(driver.predicted_seconds(rate, driver.approx_patches(s),
                                                driver.MIN_EPOCHS) > driver.TRAIN_BUDGET_S
                       for s in bigger)
    assert driver.plan((0.001, 1.0)) == ("small", driver.MAX_EPOCHS)
    assert driver.plan((1.0, 1.0)) == ("tiny", 2)
    # the slow 2-core AVX2 machine of issue 12: 3.5 min per model (small, 5 epochs),
    # of which ~10 s to start it
    slow = (200 / (driver.approx_patches("small") * (5 * 2 / 3 * 1.1 + 0.3)), 5.0)
    size, epochs = driver.plan(slow)
    assert driver.predicted_seconds(slow, driver.approx_patches(size), epochs) < 6 * 60


def test_approx_patches_close_to_generated(tiny_demo):
    n = len(list((tiny_demo / "patches").glob("*.tif")))
    assert n <= driver.approx_patches("tiny") <= 1.15 * n


def test_one_system_demo_writes_times(tmp_path, capsys):
    times = driver.run(tmp_path / "demo", only="massbalance")
    assert set(times) == {"massbalance", "total"} and times["total"] >= times["massbalance"]
    assert json.loads((tmp_path / "demo" / "times.json").read_text()) == times
    out = capsys.readouterr().out
    assert "=== 1/1 mass balance" in out and "mass balance: 40 glacier-years" in out
    assert (tmp_path / "demo" / "massbalance" / "demo_scatter.png").exists()


@pytest.mark.parametrize("argv, flag", [(["--size", "huge"], "--size"),
                                        (["--epochs", "-1"], "--epochs")])
def test_bad_requests_exit_2(tmp_path, capsys, argv, flag):
    assert driver.main(["--out", str(tmp_path / "d"), *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("python -m utils.demo: ") and flag in err
    assert not (tmp_path / "d").exists()
