"""The one retrain rule, on evidence whose verdict is known."""

from __future__ import annotations

from dataclasses import replace

import pytest

from ctr_assets.ml.decision import RetrainPolicy, decide_retrain
from ctr_assets.ml.gate import GateEvidence

POLICY = RetrainPolicy(mae_threshold=0.02, min_samples=50)
NAIVE = replace(POLICY, gate="naive")


def _evidence(**changes: object) -> GateEvidence:
    """A window of 400 rows whose true MAE is within the threshold, observed MAE above it."""
    base = GateEvidence(
        threshold=0.02,
        confidence=0.99,
        n_samples=400,
        mae=0.0236,
        noise_mae=0.0230,
        boundary_mae=0.0290,
        mae_lower_bound=0.0,
        mae_upper_bound=0.0114,
        excess=-0.0054,
        excess_se=0.0012,
        breach=False,
        naive_breach=True,
        dispersion=1.0,
        dispersion_note="binomial assumed",
        cusum_statistic=0.0,
        cusum_limit=2.5,
        cusum_alarm=False,
        cusum_batches=7,
    )
    return replace(base, **changes)


BREACH = _evidence(mae=0.041, mae_lower_bound=0.0231, mae_upper_bound=0.0302, breach=True)
CUSUM = _evidence(cusum_statistic=3.4, cusum_alarm=True)


@pytest.mark.parametrize(
    ("evidence", "policy", "champion", "action", "words"),
    [
        pytest.param(None, POLICY, False, "retrain", "no champion yet", id="no-champion"),
        pytest.param(BREACH, POLICY, False, "retrain", "no champion yet", id="first-any-case"),
        pytest.param(None, POLICY, True, "insufficient_data", "only 0 mature", id="nothing"),
        pytest.param(
            _evidence(n_samples=49), POLICY, True, "insufficient_data", "only 49", id="49-rows"
        ),
        pytest.param(
            _evidence(), POLICY, True, "no_retrain_needed", "not shown to exceed", id="noise"
        ),
        pytest.param(BREACH, POLICY, True, "retrain", "beyond noise", id="bound-above"),
        pytest.param(CUSUM, POLICY, True, "retrain", "CUSUM 3.4 > 2.5", id="cusum"),
        pytest.param(
            CUSUM,
            replace(POLICY, cusum=False),
            True,
            "no_retrain_needed",
            "not shown",
            id="cusum-off",
        ),
        pytest.param(_evidence(), NAIVE, True, "retrain", "naive gate", id="naive-on-noise"),
        pytest.param(
            _evidence(mae=0.019, naive_breach=False),
            NAIVE,
            True,
            "no_retrain_needed",
            "within threshold",
            id="naive-within",
        ),
    ],
)
def test_decide_retrain(
    evidence: GateEvidence | None,
    policy: RetrainPolicy,
    champion: bool,
    action: str,
    words: str,
) -> None:
    decision = decide_retrain(evidence, policy, has_champion=champion)
    assert decision.action == action
    assert words in decision.reason


def test_the_record_carries_both_views_whichever_gate_decides() -> None:
    for policy in (POLICY, NAIVE):
        views = decide_retrain(_evidence(), policy, has_champion=True).views
        assert views == {"noise_aware": "no_retrain_needed", "naive": "retrain"}


def test_the_reason_names_the_bounds_the_noise_floor_and_what_was_left_out() -> None:
    decision = decide_retrain(BREACH, POLICY, True, left_out=" (12 immature left out)")
    assert decision.reason == (
        "true MAE between 0.0231 and 0.0302 (99% bounds; observed MAE 0.0410, noise floor "
        "0.0230): above threshold 0.0200 beyond noise over 400 predictions "
        "(12 immature left out)"
    )


def test_evidence_taken_at_another_threshold_is_refused() -> None:
    with pytest.raises(ValueError, match="measure the accuracy again"):
        decide_retrain(_evidence(threshold=0.03), POLICY, has_champion=True)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"mae_threshold": 0.0}, "mae_threshold"),
        ({"min_samples": 1}, "min_samples"),
        ({"gate": "strict"}, "gate"),
        ({"confidence": 1.0}, "confidence"),
        ({"dispersion": 0.5}, "dispersion"),
        ({"cusum_h": 0}, "CUSUM"),
        ({"cusum_days": 0}, "cusum_days"),
    ],
)
def test_nonsense_policy_is_refused(settings: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RetrainPolicy(**settings)  # type: ignore[arg-type]
