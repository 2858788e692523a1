"""Honest statistics for pilots: difference-in-differences with intervals.

Pure functions over per-member arrays (one value per member for the pre
period and one for the pilot period). The pilot's effect is judged against
its random control group, never by a before/after on the pilot alone.

- ``did_welch``: lift = mean change in the pilot group - mean change in the
  control group, Welch standard error and Satterthwaite degrees of freedom
  (equal to ``scipy.stats.ttest_ind(equal_var=False)`` on the changes).
- ``did_cuped``: the same contrast on the during-period metric adjusted by the
  pre-period metric (theta pooled over both groups), usually a narrower
  interval when members' behaviour is stable.
- ``did_bootstrap``: percentile interval from resampling members within
  each group; no normality assumption.
- ``srm_check``: chi-square test that the group sizes match the drawn share.
- ``required_sample`` / ``power``: normal-approximation sample size and power.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

from db.i18n import N_, Message

ALPHA = 0.05
MIN_PER_GROUP = 30


@dataclass(frozen=True)
class Estimate:
    method: str
    lift: float
    ci_low: float
    ci_high: float
    p_value: float
    n_pilot: int
    n_control: int
    se: float | None = None
    df: float | None = None

    @property
    def significant(self) -> bool:
        return self.ci_low > 0 or self.ci_high < 0


def _arrays(*xs) -> list[np.ndarray]:
    out = [np.asarray(x, dtype=float) for x in xs]
    for a in out:
        if not np.all(np.isfinite(a)):
            raise ValueError("metric values must be finite numbers")
    return out


def _welch(a: np.ndarray, b: np.ndarray, method: str, alpha: float) -> Estimate:
    """Welch's t interval for mean(a) - mean(b): scipy's ``ttest_ind`` with
    unequal variances (its interval, p-value and Satterthwaite df)."""
    na, nb = len(a), len(b)
    if na < 2 or nb < 2:
        return Estimate(method, float("nan"), float("nan"), float("nan"), float("nan"), na, nb)
    lift = float(a.mean() - b.mean())
    se = float(np.sqrt(a.var(ddof=1) / na + b.var(ddof=1) / nb))
    if se == 0:  # no spread at all: scipy has no interval to give
        p = 1.0 if lift == 0 else 0.0
        return Estimate(method, lift, lift, lift, p, na, nb, 0.0, None)
    with warnings.catch_warnings():
        # a group whose values are all equal (e.g. nobody changed): its
        # variance is exactly zero, which is what the interval should use
        warnings.filterwarnings("ignore", "Precision loss occurred", RuntimeWarning)
        res = sps.ttest_ind(a, b, equal_var=False)
    ci = res.confidence_interval(confidence_level=1 - alpha)
    return Estimate(method, lift, float(ci.low), float(ci.high), float(res.pvalue), na, nb,
                    se, float(res.df))


def did_welch(pre_p, post_p, pre_c, post_c, *, alpha: float = ALPHA) -> Estimate:
    """Difference-in-differences of means, Welch interval on per-member changes."""
    pre_p, post_p, pre_c, post_c = _arrays(pre_p, post_p, pre_c, post_c)
    if len(pre_p) != len(post_p) or len(pre_c) != len(post_c):
        raise ValueError("pre and post values must be given for the same members")
    return _welch(post_p - pre_p, post_c - pre_c, "welch", alpha)


def cuped_theta(pre: np.ndarray, post: np.ndarray) -> float:
    v = pre.var(ddof=1) if len(pre) > 1 else 0.0
    return float(np.cov(pre, post, ddof=1)[0, 1] / v) if v > 0 else 0.0


def did_cuped(pre_p, post_p, pre_c, post_c, *, alpha: float = ALPHA) -> Estimate:
    """Lift on the during-period metric, variance-reduced by the pre-period one."""
    pre_p, post_p, pre_c, post_c = _arrays(pre_p, post_p, pre_c, post_c)
    pre = np.concatenate([pre_p, pre_c])
    post = np.concatenate([post_p, post_c])
    if len(pre) < 3:
        return _welch(post_p, post_c, "cuped", alpha)
    theta = cuped_theta(pre, post)
    mu = pre.mean()
    return _welch(post_p - theta * (pre_p - mu), post_c - theta * (pre_c - mu), "cuped", alpha)


def did_bootstrap(
    pre_p, post_p, pre_c, post_c, *, n_boot: int = 2000, seed: int = 0, alpha: float = ALPHA
) -> Estimate:
    """Percentile bootstrap of the difference-in-differences of means."""
    pre_p, post_p, pre_c, post_c = _arrays(pre_p, post_p, pre_c, post_c)
    dp, dc = post_p - pre_p, post_c - pre_c
    np_, nc = len(dp), len(dc)
    lift = float(dp.mean() - dc.mean()) if np_ and nc else float("nan")
    if np_ < 2 or nc < 2:
        return Estimate("bootstrap", lift, float("nan"), float("nan"), float("nan"), np_, nc)
    rng = np.random.default_rng(seed)
    # resample in blocks to bound memory on 100k-member pilots
    boots = np.empty(n_boot)
    block = max(1, 20_000_000 // max(np_, nc))
    for start in range(0, n_boot, block):
        k = min(block, n_boot - start)
        mp = dp[rng.integers(0, np_, size=(k, np_))].mean(axis=1)
        mc = dc[rng.integers(0, nc, size=(k, nc))].mean(axis=1)
        boots[start : start + k] = mp - mc
    lo, hi = np.quantile(boots, [alpha / 2, 1 - alpha / 2])
    p = float(min(1.0, 2 * min((boots <= 0).mean(), (boots >= 0).mean())))
    return Estimate("bootstrap", lift, float(lo), float(hi), p, np_, nc, float(boots.std(ddof=1)))


@dataclass(frozen=True)
class SrmResult:
    expected_share: float
    observed_share: float
    p_value: float

    @property
    def mismatch(self) -> bool:
        # a strict threshold, as SRM checks use: a true mismatch is a bug, not noise
        return self.p_value < 0.001


def srm_check(n_pilot: int, n_control: int, pilot_share: float) -> SrmResult:
    n = n_pilot + n_control
    if n == 0 or not 0 < pilot_share < 1:
        return SrmResult(pilot_share, float("nan"), 1.0)
    expected = [n * pilot_share, n * (1 - pilot_share)]
    p = float(sps.chisquare([n_pilot, n_control], expected).pvalue)
    return SrmResult(pilot_share, n_pilot / n, p)


def required_sample(
    sd: float, min_effect: float, pilot_share: float = 0.5, *, alpha: float = ALPHA,
    power: float = 0.8,
) -> int | None:
    """Members needed in total (pilot + control) to detect ``min_effect``."""
    if not (sd > 0 and min_effect > 0 and 0 < pilot_share < 1):
        return None
    z = sps.norm.ppf(1 - alpha / 2) + sps.norm.ppf(power)
    n = z**2 * sd**2 * (1 / pilot_share + 1 / (1 - pilot_share)) / min_effect**2
    return int(np.ceil(n))


def power(
    sd: float, min_effect: float, n_pilot: int, n_control: int, *, alpha: float = ALPHA
) -> float | None:
    """Chance of a significant result if the true lift is ``min_effect``."""
    if not (sd > 0 and min_effect > 0 and n_pilot > 0 and n_control > 0):
        return None
    se = sd * np.sqrt(1 / n_pilot + 1 / n_control)
    z = sps.norm.ppf(1 - alpha / 2)
    return float(sps.norm.cdf(min_effect / se - z) + sps.norm.cdf(-min_effect / se - z))


def verdict(est: Estimate, *, min_per_group: int = MIN_PER_GROUP) -> tuple[str, Message]:
    """(code, sentence) that never says more than the interval does; the
    sentence is a message marked for translation (``N_``)."""
    if est.n_pilot < min_per_group or est.n_control < min_per_group or not np.isfinite(
        est.ci_low
    ):
        return (
            "too_little_data",
            N_("Too little data to judge: %(pilot)s pilot and %(control)s control members "
               "(at least %(least)s each are needed).", pilot=est.n_pilot,
               control=est.n_control, least=min_per_group),
        )
    lift, low, high = (f"{x:+.2f}" for x in (est.lift, est.ci_low, est.ci_high))
    p = f"{est.p_value:.3g}"
    if est.ci_low > 0:
        return ("lift", N_("Significant lift: %(lift)s (95%% CI %(low)s to %(high)s, p = %(p)s).",
                           lift=lift, low=low, high=high, p=p))
    if est.ci_high < 0:
        return ("harm", N_("Harm: the pilot group did worse by %(amount)s (95%% CI %(low)s to "
                           "%(high)s, p = %(p)s).", amount=f"{abs(est.lift):.2f}", low=low,
                           high=high, p=p))
    return ("no_effect", N_(
        "No detectable effect: %(lift)s with a 95%% CI from %(low)s to %(high)s; an effect of "
        "that size either way cannot be ruled out.", lift=lift, low=low, high=high))
