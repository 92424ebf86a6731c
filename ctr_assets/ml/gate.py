"""The statistical retrain gate: has the champion's *true* MAE passed the threshold?

The rule users set is "retrain when the model's MAE exceeds 0.02". What they mean is the
error against the true CTR of each video. What we can observe is the error against
clicks / impressions, which is that plus binomial sampling noise: a perfect model shows an
observed MAE of about 0.025 on outcomes resolved after 20-300 impressions at CTRs of
3-10%. So the observed MAE is never compared with the threshold directly.

The noise model (per resolved prediction i)
-------------------------------------------
p_i the prediction, n_i the impressions of the outcome, y_i = clicks / n_i, and the true
CTR theta_i unknown. Clicks are binomial, possibly over-dispersed by a factor phi >= 1
(bots, placement mixes): Var(y_i) = phi * theta_i (1 - theta_i) / n_i. We model that as a
binomial on nu_i = round(n_i / phi) "effective impressions".

The boundary
------------
For a threshold t, b_i(t) is the observed absolute error that row i would show in
expectation if the model were exactly at the threshold on it: its true error drawn from a
normal spread (|p_i - theta_i| half-normal, mean t; theta_i kept in [0, 1] with the spread
widened so the mean stays t), and the outcome drawn from that theta_i:

    b_i(t) = E_theta E_K | p_i - K / nu_i |,  K ~ Binomial(nu_i, theta_i)

computed exactly for few expected clicks (nu p (1-p) < 30; 24 equally likely errors, and
E|c - K/nu| = theta - c + 2 [c F_nu(m) - theta F_{nu-1}(m - 1)] with m = ceil(c nu) - 1
and F the binomial CDF), and with the normal approximation sqrt(t^2 + 2 sigma_i^2 / pi),
sigma_i^2 = phi p_i (1 - p_i) / n_i, otherwise. b_i(0) is the noise floor: what a perfect
model would show on that row.

The test
--------
z_i = |p_i - y_i| - b_i(t). Over the N mature rows of the window, the mean of z has mean
<= 0 when the model is at or under the threshold (for errors of normal spread; errors of
equal size make it more negative, so the gate is then conservative), and standard error
sd(z) / sqrt(N) (rows are independent videos). The gate says "retrain" when the one-sided
lower confidence bound is above zero:

    mean(z(tau)) - q * sd(z(tau)) / sqrt(N) > 0,   q = Phi^-1(confidence)

The same inversion over t gives the confidence interval of the true MAE reported with
every check: the lower bound is the largest t the data rule in, the upper the smallest t
they rule out.

Assumptions, and where they bend
--------------------------------
- Rows are independent given the model (one row per prediction of a distinct video).
- Errors of normal spread or more even. If a model is right on most videos and far off on
  a few, the observed error on noisy rows follows the root mean square of the true errors,
  which is above their mean: such a model sits above the boundary and alarms more often
  than `1 - confidence` at a true MAE exactly at the threshold.
- phi is estimated from the window (see `estimate_dispersion`) unless configured.

The CUSUM
---------
A 7-day mean dilutes a jump: after a drift it takes days of bad predictions before the
window's bound clears the threshold. So the same z, per batch of rows resolved on one day
(days with fewer than `CUSUM_MIN_BATCH` rows pool with the next), feeds a one-sided CUSUM
over the champion's own outcomes (a promotion starts it afresh). Each batch is
standardised by the spread the noise model gives a model exactly at the threshold,
v_i(t) = E[(p_i - y_i)^2] - b_i(t)^2 with E[(p - y)^2] = E[(p - theta)^2] + E[theta (1 -
theta)] / nu, so a batch at the boundary is about N(0, 1) whatever the day's volume:

    u_j = sum_j(z_i) / sqrt(sum_j(v_i)),  S_j = max(0, S_{j-1} + u_j - k),  alarm when S_j > h

k = 1 is the reference value that detects a jump of two standard errors per day fastest
(smaller, slower creep is the 7-day bound's to find), and h = 2.5 sets how rarely a model
at the threshold alarms (see the README for the measured rates). Like the
boundary, this scale assumes errors of normal spread; errors more uneven than that widen
the real spread and make the CUSUM alarm more often at the threshold.
"""

from __future__ import annotations

from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
from scipy import stats

# Below this many expected clicks-or-non-clicks the binomial is too skewed for the
# normal approximation, and the boundary is computed exactly.
EXACT_BELOW_VARIANCE_COUNT = 30.0
ERROR_NODES = 24  # equally likely true errors per row in the exact boundary
DISPERSION_MIN_ROWS = 500
DISPERSION_MIN_NOISE_SHARE = 0.25
DISPERSION_MAX = 4.0
CUSUM_MIN_BATCH = 20


@dataclass(frozen=True)
class Outcomes:
    """The judged rows: one resolved, mature prediction each, as float64 arrays."""

    predicted: np.ndarray
    observed: np.ndarray
    impressions: np.ndarray
    batch: np.ndarray | None = None  # CUSUM batch key (resolution day), non-decreasing
    predicted_at: np.ndarray | None = None  # epoch seconds, to cut windows from

    def __post_init__(self) -> None:
        n = len(self.predicted)
        if len(self.observed) != n or len(self.impressions) != n:
            raise ValueError("predicted, observed and impressions must have one value per row")
        if n and not np.all(self.impressions > 0):
            raise ValueError("every judged row needs positive impressions; screen them first")

    def __len__(self) -> int:
        return len(self.predicted)

    @property
    def abs_error(self) -> np.ndarray:
        return np.abs(self.predicted - self.observed)

    def predicted_since(self, epoch_seconds: float) -> Outcomes:
        """The rows predicted at or after `epoch_seconds`, in the same order."""
        if self.predicted_at is None:
            raise ValueError("these outcomes carry no prediction times")
        keep = self.predicted_at >= epoch_seconds
        return Outcomes(
            self.predicted[keep],
            self.observed[keep],
            self.impressions[keep],
            None if self.batch is None else self.batch[keep],
            self.predicted_at[keep],
        )


@dataclass(frozen=True)
class Dispersion:
    """How much wider than binomial the clicks scatter (1.0: binomial)."""

    phi: float
    estimated: bool
    note: str


def estimate_dispersion(outcomes: Outcomes) -> Dispersion:
    """phi from the outcomes themselves, without letting the model's error pass for noise.

    E[(y - p)^2 | n] = E[d^2] + phi * E[theta (1 - theta)] / n: the squared residual is
    the squared true error plus the binomial variance times phi, and only the second part
    shrinks with the impressions. So the squared residuals are regressed on 1 / n (not on
    anything computed from the prediction, which would correlate with the model's error):
    the slope over the mean of p (1 - p) estimates phi, and an error that does not depend
    on the impressions cannot pass for dispersion. The regression is weighted by the
    inverse square of each row's fitted mean (squared residuals scatter in proportion to
    their mean; three rounds of reweighting), which makes it several times sharper than
    plain least squares where impressions are few. phi is never below 1: the noise is never
    assumed narrower than binomial.

    It needs rows with varied impressions, and binomial label noise that makes up at least
    `DISPERSION_MIN_NOISE_SHARE` of the squared residuals: where outcomes have many
    impressions the noise is tiny next to the model's errors, phi barely matters, and a
    model whose error happens to vary with the impressions (a drift on a platform that
    buys fewer impressions) would pass for dispersion and hide itself. Otherwise phi = 1 is
    assumed and the note says so. An estimate above `DISPERSION_MAX` is held there: clicks
    scatter a few times more than binomially at most, and more is likelier a model error
    that varies with the impressions.
    """
    n = len(outcomes)
    inverse = 1.0 / outcomes.impressions
    if n < DISPERSION_MIN_ROWS or np.std(inverse) < 0.1 * np.mean(inverse):
        return Dispersion(
            1.0,
            False,
            f"binomial assumed ({n} rows"
            + (", impressions too alike to estimate over-dispersion)" if n else ")"),
        )
    p = np.clip(outcomes.predicted, 0.0, 1.0)
    squared = (outcomes.observed - outcomes.predicted) ** 2
    design = np.column_stack([np.ones(n), inverse])
    weights = np.ones(n)
    floor = 0.05 * float(squared.mean())  # a fitted mean near 0 must not take all the weight
    for _ in range(3):
        root = np.sqrt(weights)
        coefficients = np.linalg.lstsq(design * root[:, None], squared * root, rcond=None)[0]
        weights = 1.0 / np.maximum(design @ coefficients, floor) ** 2
    phi = float(coefficients[1] / np.mean(p * (1 - p)))
    noise_share = float(np.mean(p * (1 - p) * inverse) / np.mean(squared))
    if noise_share < DISPERSION_MIN_NOISE_SHARE:
        return Dispersion(
            1.0,
            False,
            f"binomial assumed: binomial label noise is {noise_share:.0%} of the squared "
            "errors, too little next to the model's own errors to measure over-dispersion",
        )
    if phi > DISPERSION_MAX:
        return Dispersion(
            DISPERSION_MAX,
            True,
            f"estimated {phi:.1f} from {n} rows, held at {DISPERSION_MAX:g}: more is more likely "
            "a model error that varies with the impressions than noise",
        )
    return Dispersion(max(1.0, phi), True, f"estimated from {n} rows ({phi:.2f})")


def _expected_abs_deviation(c: np.ndarray, theta: np.ndarray, nu: np.ndarray) -> np.ndarray:
    """E|c - K/nu| for K ~ Binomial(nu, theta), exactly (see the module docstring)."""
    m = np.ceil(c * nu) - 1
    below = stats.binom.cdf(m, nu, theta)
    below_one_fewer = np.where(m >= 1, stats.binom.cdf(m - 1, nu - 1, theta), 0.0)
    return theta - c + 2 * (c * below - theta * below_one_fewer)


_NODES = np.array([NormalDist().inv_cdf((j + 0.5) / ERROR_NODES) for j in range(ERROR_NODES)])


def _error_scale(p: np.ndarray, t: float) -> np.ndarray:
    """Per row, the spread s of the signed true error e ~ N(0, s^2) whose mean absolute
    value is t once theta = p - e is kept in [0, 1] (clipping shrinks errors near 0 and 1,
    so s grows there). Solved by bisection over the same nodes the boundary uses."""
    low = np.zeros_like(p)
    high = np.full_like(p, t * np.sqrt(np.pi / 2))
    while True:  # widen until the mean error reaches t (it can, for t < 0.5)
        short = _clipped_mae(p, high) < t
        if not short.any():
            break
        high = np.where(short, high * 2, high)
    for _ in range(40):
        middle = (low + high) / 2
        short = _clipped_mae(p, middle) < t
        low, high = np.where(short, middle, low), np.where(short, high, middle)
    return (low + high) / 2


def _clipped_mae(p: np.ndarray, s: np.ndarray) -> np.ndarray:
    theta = np.clip(p[:, None] - s[:, None] * _NODES[None, :], 0.0, 1.0)
    return np.abs(p[:, None] - theta).mean(axis=1)


def boundary_mae(outcomes: Outcomes, t: float, phi: float = 1.0) -> np.ndarray:
    """b_i(t): per row, the observed MAE of a model whose true MAE there is exactly t."""
    return boundary_moments(outcomes, t, phi)[0]


def boundary_moments(
    outcomes: Outcomes, t: float, phi: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the mean b_i(t) and the variance of the observed absolute error of a model
    whose true MAE there is exactly t (the variance from E[(p - y)^2] = E[(p - theta)^2]
    + E[theta (1 - theta)] / nu, minus b_i(t)^2)."""
    if not 0.0 <= t < 0.5:
        raise ValueError(f"a boundary MAE must lie in [0, 0.5), got {t}")
    if phi < 1.0:
        raise ValueError(f"over-dispersion phi must be at least 1, got {phi}")
    p = np.clip(outcomes.predicted, 0.0, 1.0)
    n = outcomes.impressions
    nu = np.maximum(1.0, np.round(n / phi))
    variance = phi * p * (1 - p) / n
    mean = np.sqrt(t * t + (2 / np.pi) * variance)
    second = (np.pi / 2) * t * t + variance  # E(p - y)^2 with e ~ N(0, (pi/2) t^2)
    exact = nu * p * (1 - p) < EXACT_BELOW_VARIANCE_COUNT
    if exact.any():
        pe, nue = p[exact], nu[exact]
        s = _error_scale(pe, t) if t > 0 else np.zeros_like(pe)
        theta = np.clip(pe[:, None] - s[:, None] * _NODES[None, :], 0.0, 1.0)
        mean[exact] = _expected_abs_deviation(
            np.broadcast_to(pe[:, None], theta.shape), theta, nue[:, None]
        ).mean(axis=1)
        second[exact] = ((pe[:, None] - theta) ** 2 + theta * (1 - theta) / nue[:, None]).mean(
            axis=1
        )
    return mean, np.maximum(second - mean**2, 0.0)


@dataclass(frozen=True)
class WindowEvidence:
    """What the window's outcomes say about the champion's true MAE."""

    n_samples: int
    observed_mae: float
    noise_mae: float  # what a perfect model would show on these rows
    boundary_mae: float  # what a model exactly at the threshold would show
    excess: float  # mean(|p - y| - b(threshold)): above 0 means worse than the threshold
    excess_se: float
    lower_bound: float  # confidence interval of the true MAE
    upper_bound: float | None  # None: the errors sit below a perfect model's noise floor
    breach: bool  # lower bound of the excess above 0: true MAE > threshold
    dispersion: Dispersion


def judge_window(
    outcomes: Outcomes,
    threshold: float,
    confidence: float,
    phi: float | None = None,
    *,
    with_bounds: bool = True,
) -> WindowEvidence:
    """The gate over one window of mature outcomes (see the module docstring).

    `with_bounds=False` skips the confidence interval of the true MAE (about 30 boundary
    evaluations; the verdict does not need it) and reports NaN for it.
    """
    if len(outcomes) < 2:
        raise ValueError(f"the gate needs at least 2 rows, got {len(outcomes)}")
    if not 0.5 < confidence < 1.0:
        raise ValueError(f"confidence must lie in (0.5, 1), got {confidence}")
    dispersion = (
        estimate_dispersion(outcomes)
        if phi is None
        else Dispersion(float(phi), False, f"given ({phi:g})")
    )
    q = NormalDist().inv_cdf(confidence)
    errors = outcomes.abs_error
    n = len(outcomes)

    def margin(t: float, side: float) -> float:
        z = errors - boundary_mae(outcomes, t, dispersion.phi)
        return float(z.mean() + side * q * z.std(ddof=1) / np.sqrt(n))

    at_threshold = errors - boundary_mae(outcomes, threshold, dispersion.phi)
    excess = float(at_threshold.mean())
    excess_se = float(at_threshold.std(ddof=1) / np.sqrt(n))
    return WindowEvidence(
        n_samples=n,
        observed_mae=float(errors.mean()),
        noise_mae=float(boundary_mae(outcomes, 0.0, dispersion.phi).mean()),
        boundary_mae=float((errors - at_threshold).mean()),
        excess=excess,
        excess_se=excess_se,
        lower_bound=_largest_t_ruled_in(lambda t: margin(t, -1.0)) if with_bounds else np.nan,
        upper_bound=_upper_bound(lambda t: margin(t, +1.0)) if with_bounds else np.nan,
        breach=excess - q * excess_se > 0,
        dispersion=dispersion,
    )


def _upper_bound(margin) -> float | None:
    """The smallest t the data rule out from above; None when even t = 0 is ruled out: the
    observed errors sit below what a perfect model would show. That happens where clicks
    are very few (a model that predicts below the truth is then closer to the usual zero
    clicks than a perfect one); no upper bound is honest there, so none is given."""
    return _largest_t_ruled_in(margin) if margin(0.0) > 0 else None


def _largest_t_ruled_in(margin, top: float = 0.45, tolerance: float = 2e-5) -> float:
    """The t where a decreasing margin(t) crosses zero (0 if it is below zero at 0)."""
    if margin(0.0) <= 0:
        return 0.0
    if margin(top) > 0:
        return top
    low, high = 0.0, top
    while high - low > tolerance:
        middle = (low + high) / 2
        low, high = (middle, high) if margin(middle) > 0 else (low, middle)
    return (low + high) / 2


def format_bounds(lower: float | None, upper: float | None) -> str:
    """A confidence interval of the true MAE for a table column, 13 characters wide."""
    if lower is None:
        return "     n/a     "
    return f"{lower:.4f}-{upper:.4f}" if upper is not None else f"{lower:.4f}-  n/a "


@dataclass(frozen=True)
class CusumEvidence:
    statistic: float  # S after the newest batch
    limit: float  # h
    alarm: bool  # S > h now
    batches: int


def cusum(
    outcomes: Outcomes, threshold: float, k: float, h: float, phi: float | None = None
) -> CusumEvidence:
    """One-sided CUSUM of the standardised excess per batch (see the module docstring).

    `outcomes.batch` orders the rows (resolution day, non-decreasing); rows of one batch
    key form one step, pooled with the next while they are fewer than `CUSUM_MIN_BATCH`.
    """
    if k < 0 or h <= 0:
        raise ValueError(f"CUSUM needs k >= 0 and h > 0, got k={k}, h={h}")
    if len(outcomes) < 2 or outcomes.batch is None:
        return CusumEvidence(0.0, h, False, 0)
    if np.any(np.diff(outcomes.batch) < 0):
        raise ValueError("CUSUM rows must be ordered by their batch key")
    spread_phi = estimate_dispersion(outcomes).phi if phi is None else phi
    mean, variance = boundary_moments(outcomes, threshold, spread_phi)
    z = outcomes.abs_error - mean
    edges = [0, *(np.flatnonzero(np.diff(outcomes.batch)) + 1), len(z)]
    statistic, batches, start = 0.0, 0, 0
    for stop in edges[1:]:
        if stop - start < CUSUM_MIN_BATCH and stop < len(z):
            continue  # pool a small day with the next
        spread = float(np.sqrt(variance[start:stop].sum()))
        if spread > 0:
            standardised = float(z[start:stop].sum()) / spread
            statistic = max(0.0, statistic + standardised - k)
            batches += 1
        start = stop
    return CusumEvidence(statistic, h, bool(statistic > h), batches)


@dataclass(frozen=True)
class GateEvidence:
    """Both views of one window (the noise-aware gate and the point MAE) and the CUSUM.

    Figures are None when there were fewer than 2 rows to compute them from.
    """

    threshold: float
    confidence: float
    n_samples: int
    mae: float | None  # observed, against clicks / impressions
    noise_mae: float | None
    boundary_mae: float | None
    mae_lower_bound: float | None
    mae_upper_bound: float | None
    excess: float | None
    excess_se: float | None
    breach: bool  # noise-aware: the true MAE exceeds the threshold with `confidence`
    naive_breach: bool  # the point rule: observed MAE > threshold
    dispersion: float
    dispersion_note: str
    cusum_statistic: float
    cusum_limit: float
    cusum_alarm: bool
    cusum_batches: int

    def as_dict(self) -> dict[str, object]:
        """Plain Python values (JSON-ready)."""
        return {k: v.item() if isinstance(v, np.generic) else v for k, v in self.__dict__.items()}

    @classmethod
    def from_dict(cls, values: dict[str, object]) -> GateEvidence:
        return cls(**{name: values[name] for name in cls.__dataclass_fields__})


def assess(
    window: Outcomes,
    since_promotion: Outcomes,
    threshold: float,
    confidence: float,
    *,
    phi: float | None = None,
    cusum_k: float = 1.0,
    cusum_h: float = 2.5,
    with_bounds: bool = True,
) -> GateEvidence:
    """The evidence a retrain decision is taken on: the window's gate and the CUSUM over
    the champion's outcomes (`since_promotion`, in resolution order, which also gives the
    over-dispersion: its traffic is the window's and more)."""
    n = len(window)
    if n < 2:
        return GateEvidence(
            threshold=threshold,
            confidence=confidence,
            n_samples=n,
            mae=float(window.abs_error.mean()) if n else None,
            noise_mae=None,
            boundary_mae=None,
            mae_lower_bound=None,
            mae_upper_bound=None,
            excess=None,
            excess_se=None,
            breach=False,
            naive_breach=bool(n and window.abs_error.mean() > threshold),
            dispersion=1.0 if phi is None else float(phi),
            dispersion_note="too few rows",
            cusum_statistic=0.0,
            cusum_limit=cusum_h,
            cusum_alarm=False,
            cusum_batches=0,
        )
    if phi is None:
        pool = since_promotion if len(since_promotion) > len(window) else window
        dispersion = estimate_dispersion(pool)
    else:
        dispersion = Dispersion(float(phi), False, f"configured ({phi:g})")
    evidence = judge_window(window, threshold, confidence, dispersion.phi, with_bounds=with_bounds)
    drift = cusum(since_promotion, threshold, cusum_k, cusum_h, dispersion.phi)
    return GateEvidence(
        threshold=threshold,
        confidence=confidence,
        n_samples=n,
        mae=evidence.observed_mae,
        noise_mae=evidence.noise_mae,
        boundary_mae=evidence.boundary_mae,
        mae_lower_bound=evidence.lower_bound,
        mae_upper_bound=evidence.upper_bound,
        excess=evidence.excess,
        excess_se=evidence.excess_se,
        breach=evidence.breach,
        naive_breach=bool(evidence.observed_mae > threshold),
        dispersion=dispersion.phi,
        dispersion_note=dispersion.note,
        cusum_statistic=drift.statistic,
        cusum_limit=drift.limit,
        cusum_alarm=drift.alarm,
        cusum_batches=drift.batches,
    )
