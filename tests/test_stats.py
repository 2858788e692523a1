"""Pilot statistics on simulated pilots with a known true effect."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps
from statsmodels.stats.power import TTestIndPower
from statsmodels.stats.weightstats import CompareMeans, DescrStatsW

from db.stats import (
    did_bootstrap,
    did_cuped,
    did_welch,
    power,
    required_sample,
    srm_check,
    verdict,
)


def simulate_pilot(rng, n_p, n_c, effect, *, sd_member=40.0, sd_noise=25.0):
    """Spend per member before and during; members differ a lot (sd_member),
    periods less (sd_noise); the pilot adds ``effect`` during the pilot."""
    base_p = rng.gamma(2.0, 50.0, n_p) + rng.normal(0, sd_member, n_p)
    base_c = rng.gamma(2.0, 50.0, n_c) + rng.normal(0, sd_member, n_c)
    pre_p = base_p + rng.normal(0, sd_noise, n_p)
    pre_c = base_c + rng.normal(0, sd_noise, n_c)
    post_p = base_p + 5 + effect + rng.normal(0, sd_noise, n_p)  # +5: season, both groups
    post_c = base_c + 5 + rng.normal(0, sd_noise, n_c)
    return pre_p, post_p, pre_c, post_c


@pytest.mark.parametrize("method", [did_welch, did_cuped])
def test_coverage_and_false_positives(method):
    rng = np.random.default_rng(7)
    runs = 1000
    covered = false_pos = 0
    for _ in range(runs):
        est = method(*simulate_pilot(rng, 150, 150, effect=8.0))
        covered += est.ci_low <= 8.0 <= est.ci_high
        null = method(*simulate_pilot(rng, 150, 150, effect=0.0))
        false_pos += null.significant
    # binomial sd at 1000 runs is ~0.7 %: these bounds are ~3.5 sd wide
    assert 0.925 <= covered / runs <= 0.975
    assert 0.025 <= false_pos / runs <= 0.075


def test_bootstrap_coverage():
    rng = np.random.default_rng(11)
    runs = 300
    covered = false_pos = 0
    for i in range(runs):
        est = did_bootstrap(*simulate_pilot(rng, 120, 120, effect=8.0), n_boot=600, seed=i)
        covered += est.ci_low <= 8.0 <= est.ci_high
        null = did_bootstrap(*simulate_pilot(rng, 120, 120, 0.0), n_boot=600, seed=i)
        false_pos += null.significant
    assert 0.90 <= covered / runs <= 0.985
    assert 0.015 <= false_pos / runs <= 0.10


def test_welch_agrees_with_scipy_and_statsmodels():
    rng = np.random.default_rng(3)
    pre_p, post_p, pre_c, post_c = simulate_pilot(rng, 200, 170, effect=10.0)
    est = did_welch(pre_p, post_p, pre_c, post_c)
    dp, dc = post_p - pre_p, post_c - pre_c
    ref = sps.ttest_ind(dp, dc, equal_var=False)
    assert est.p_value == pytest.approx(ref.pvalue, rel=1e-9)
    lo, hi = ref.confidence_interval(0.95)
    assert (est.ci_low, est.ci_high) == (pytest.approx(lo), pytest.approx(hi))
    cm = CompareMeans(DescrStatsW(dp), DescrStatsW(dc))
    slo, shi = cm.tconfint_diff(usevar="unequal")
    assert (est.ci_low, est.ci_high) == (pytest.approx(slo), pytest.approx(shi))


def test_cuped_is_narrower_and_matches_regression():
    import statsmodels.api as sm

    rng = np.random.default_rng(5)
    pre_p, post_p, pre_c, post_c = simulate_pilot(rng, 400, 400, effect=8.0, sd_noise=10.0)
    w = did_welch(pre_p, post_p, pre_c, post_c)
    c = did_cuped(pre_p, post_p, pre_c, post_c)
    assert c.ci_high - c.ci_low < w.ci_high - w.ci_low
    # ANCOVA: post ~ treated + (pre - mean); CUPED's theta is the pooled slope, ANCOVA's the
    # within-group one: under randomisation they agree closely, not to the last digit
    pre = np.concatenate([pre_p, pre_c])
    x = np.column_stack([np.r_[np.ones(400), np.zeros(400)], pre - pre.mean()])
    fit = sm.OLS(np.concatenate([post_p, post_c]), sm.add_constant(x)).fit()
    assert c.lift == pytest.approx(fit.params[1], rel=1e-3)
    assert c.se == pytest.approx(fit.bse[1], rel=0.02)


def test_srm():
    assert not srm_check(5010, 4990, 0.5).mismatch
    assert srm_check(5500, 4500, 0.5).mismatch
    assert not srm_check(2000, 8000, 0.2).mismatch


def test_sample_size_agrees_with_statsmodels():
    n_total = required_sample(sd=50.0, min_effect=10.0, pilot_share=0.5)
    per_group = TTestIndPower().solve_power(effect_size=10 / 50, alpha=0.05, power=0.8)
    assert n_total / 2 == pytest.approx(per_group, rel=0.02)
    assert power(50.0, 10.0, n_total // 2, n_total // 2) == pytest.approx(0.8, abs=0.01)
    assert required_sample(0.0, 10.0) is None


def test_verdicts_never_overstate():
    rng = np.random.default_rng(1)
    small = did_welch(*simulate_pilot(rng, 10, 10, effect=50.0))
    assert verdict(small)[0] == "too_little_data"
    assert verdict(did_welch(*simulate_pilot(rng, 2000, 2000, effect=20.0)))[0] == "lift"
    assert verdict(did_welch(*simulate_pilot(rng, 2000, 2000, effect=-20.0)))[0] == "harm"
    code, text = verdict(did_welch(*simulate_pilot(rng, 300, 300, effect=0.0)))
    assert code in ("no_effect", "lift", "harm")  # 5 % of the time a null looks significant
    with pytest.raises(ValueError):
        did_welch([1.0, float("nan")], [1.0, 2.0], [1.0, 2.0], [1.0, 2.0])
