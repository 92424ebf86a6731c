"""The asset graph: accuracy -> (with training data) -> model and decision report."""

import base64
import json
from datetime import UTC, datetime
from typing import Any

import dagster as dg
from pydantic import Field

from ctr_assets.data.accuracy import AccuracyReport
from ctr_assets.ml.decision import decide_retrain
from ctr_assets.ml.gate import GateEvidence
from ctr_assets.ml.training import TrainingParams
from ctr_assets.models.registry import ModelVersion
from ctr_assets.models.training_configs import training_params_for_check
from ctr_assets.orchestration.resources import (
    CtrDatabase,
    ModelStore,
    RetrainSettings,
    TrainingCluster,
)
from ctr_assets.orchestration.training_data import describe_training_data, described_bad_rows
from ctr_assets.orchestration.upstream import upstream_description
from ctr_assets.reporting.plots import accuracy_trend_png, holdout_scatter_png
from ctr_assets.retraining.check import CheckSettings, RetrainError, judge_retrain_check
from ctr_assets.retraining.measure import gate_settings, measure_champion
from ctr_assets.retraining.record import TRIGGERS, DecisionRecord, recent_decisions, store_decision

GROUP = "ctr_retraining"
TRIGGER_TAG = "ctr_assets/trigger"
OWNERS = ["team:ml-engineering"]
MAE_CHECK = "mae_within_threshold"
PROMOTION_CHECK = "challenger_beats_champion"


class AccuracyConfig(dg.Config):
    as_of: str | None = Field(
        default=None,
        description="End of the accuracy window (ISO 8601, UTC). Unset: now. For replays.",
    )


_DEFAULTS = TrainingParams()


class TrainingConfig(dg.Config):
    """XGBoost settings for a challenger (hist trees, logistic objective on the CTR)."""

    num_boost_round: int = Field(
        default=_DEFAULTS.num_boost_round, description="Most boosting rounds."
    )
    early_stopping_rounds: int = Field(
        default=_DEFAULTS.early_stopping_rounds,
        description="Stop when validation MAE has not improved for this many.",
    )
    max_depth: int = Field(default=_DEFAULTS.max_depth, description="Tree depth.")
    learning_rate: float = Field(
        default=_DEFAULTS.learning_rate, description="Shrinkage per round."
    )
    min_child_weight: float = Field(
        default=_DEFAULTS.min_child_weight, description="Minimum weight in a leaf."
    )
    subsample: float = Field(default=_DEFAULTS.subsample, description="Rows sampled per tree.")
    colsample_bytree: float = Field(
        default=_DEFAULTS.colsample_bytree, description="Features sampled per tree."
    )
    reg_lambda: float = Field(default=_DEFAULTS.reg_lambda, description="L2 regularisation.")
    validation_fraction: float = Field(
        default=_DEFAULTS.validation_fraction,
        description="Share of training videos kept for early stopping.",
    )
    seed: int = Field(
        default=_DEFAULTS.seed, description="Random seed: same data and seed, same model."
    )
    nthread: int = Field(
        default=_DEFAULTS.nthread,
        description="Threads XGBoost may use in process (on a cluster, each worker's own).",
    )
    extra_params: dict[str, Any] = Field(
        default_factory=dict, description="Further raw XGBoost parameters; they win."
    )

    def params(self) -> TrainingParams:
        return TrainingParams(
            num_boost_round=self.num_boost_round,
            max_depth=self.max_depth,
            learning_rate=self.learning_rate,
            min_child_weight=self.min_child_weight,
            subsample=self.subsample,
            colsample_bytree=self.colsample_bytree,
            reg_lambda=self.reg_lambda,
            early_stopping_rounds=self.early_stopping_rounds,
            validation_fraction=self.validation_fraction,
            seed=self.seed,
            nthread=self.nthread,
            extra=dict(self.extra_params),
        )


def _number(value: float | int | None) -> dg.MetadataValue:
    """Numbers stay numbers (they plot over time); a missing figure is shown as missing."""
    if value is None:
        return dg.MetadataValue.null()
    return dg.MetadataValue.int(value) if isinstance(value, int) else dg.MetadataValue.float(value)


def _image(png: bytes) -> dg.MetadataValue:
    return dg.MetadataValue.md(f"![plot](data:image/png;base64,{base64.b64encode(png).decode()})")


def described_evidence(described: dict[str, Any], settings: CheckSettings) -> GateEvidence | None:
    """The gate's evidence `prediction_accuracy` described, if it was taken with `settings`'
    gate settings (else None: it is taken again)."""
    stored = described.get("gate_evidence")
    taken_with = described.get("gate_settings")
    expected = gate_settings(settings.policy, settings.lookback_days, settings.maturity)
    if not stored or taken_with != json.loads(json.dumps(expected)):
        return None
    return GateEvidence.from_dict(stored)


def _as_of(config: AccuracyConfig) -> datetime:
    if config.as_of is None:
        return datetime.now(UTC)
    parsed = datetime.fromisoformat(config.as_of)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@dg.asset(
    group_name=GROUP,
    kinds={"postgres"},
    owners=OWNERS,
    check_specs=[dg.AssetCheckSpec(MAE_CHECK, asset="prediction_accuracy")],
)
def prediction_accuracy(
    context: dg.AssetExecutionContext,
    config: AccuracyConfig,
    database: CtrDatabase,
    models: ModelStore,
    retrain_settings: RetrainSettings,
):
    """How far the champion's CTR predictions were from the outcomes over the lookback
    window (computed by PostgreSQL), and the retrain gate's evidence: the confidence
    interval of the true MAE with label noise taken out, and the CUSUM of recent days."""
    db = database.open()
    champion = models.registry(db).champion()
    policy, maturity = retrain_settings.policy(), retrain_settings.maturity()
    report = measure_champion(
        db,
        champion.version if champion else None,
        _as_of(config),
        policy,
        retrain_settings.lookback_days,
        maturity,
    )
    return dg.MaterializeResult(
        metadata={
            **accuracy_metadata(report, retrain_settings.mae_threshold),
            "gate_settings": dg.MetadataValue.json(
                gate_settings(policy, retrain_settings.lookback_days, maturity)
            ),
        },
        check_results=[_mae_check_result(report, retrain_settings)],
    )


def accuracy_metadata(report: AccuracyReport, threshold: float) -> dict[str, Any]:
    """The figures users plot over time, and the gate's evidence for the sensor."""
    evidence = report.evidence
    return {
        "mae": _number(report.mae),
        "n_samples": _number(report.n_samples),
        "r2": _number(report.r2),
        "rmse": _number(report.rmse),
        "mean_predicted_ctr": _number(report.mean_predicted_ctr),
        "mean_actual_ctr": _number(report.mean_actual_ctr),
        "bias": _number(report.bias),
        "roas_accuracy": _number(report.roas_accuracy),
        "roas_samples": _number(report.roas_samples),
        "threshold": _number(threshold),
        "noise_mae": _number(evidence.noise_mae if evidence else None),
        "mae_lower_bound": _number(evidence.mae_lower_bound if evidence else None),
        "mae_upper_bound": _number(evidence.mae_upper_bound if evidence else None),
        "cusum": _number(evidence.cusum_statistic if evidence else None),
        "immature_rows": _number(report.immature_rows),
        "no_impressions_rows": _number(report.no_impressions_rows),
        "invalid_ctr_rows": _number(report.bad_rows["invalid_ctr"]),
        "invalid_roas_rows": _number(report.bad_rows["invalid_roas"]),
        "champion": dg.MetadataValue.text(report.model_version or "none yet"),
        "as_of": dg.MetadataValue.text(report.as_of.isoformat()),
        "gate_evidence": dg.MetadataValue.json(evidence.as_dict() if evidence else {}),
        "by_platform": dg.MetadataValue.table(
            records=[
                dg.TableRecord(
                    {"platform": p.platform, "samples": p.n_samples, "mae": p.mae, "bias": p.bias}
                )
                for p in report.by_platform
            ],
            schema=dg.TableSchema(
                columns=[
                    dg.TableColumn("platform", "string"),
                    dg.TableColumn("samples", "int"),
                    dg.TableColumn("mae", "float", description="observed MAE of CTR"),
                    dg.TableColumn("bias", "float", description="mean predicted - actual"),
                ]
            ),
        ),
    }


def _mae_check_result(report: AccuracyReport, settings: RetrainSettings) -> dg.AssetCheckResult:
    """Passes unless the retrain gate finds the champion over the threshold."""
    decision = decide_retrain(report.evidence, settings.policy(), has_champion=True)
    metadata = {
        "mae": _number(report.mae),
        "mae_lower_bound": _number(report.evidence.mae_lower_bound if report.evidence else None),
        "threshold": settings.mae_threshold,
        "n_samples": report.n_samples,
    }
    if report.model_version is None or decision.action == "insufficient_data":
        return dg.AssetCheckResult(
            check_name=MAE_CHECK,
            passed=True,
            description=f"not judged: {decision.reason if report.model_version else 'no champion'}",
            metadata=metadata,
        )
    return dg.AssetCheckResult(
        check_name=MAE_CHECK,
        passed=decision.action != "retrain",
        severity=dg.AssetCheckSeverity.WARN,
        description=decision.reason,
        metadata=metadata,
    )


@dg.asset(group_name=GROUP, kinds={"postgres", "dask"}, owners=OWNERS)
def real_training_data(
    context: dg.AssetExecutionContext,
    database: CtrDatabase,
    retrain_settings: RetrainSettings,
    training_cluster: TrainingCluster,
) -> dg.MaterializeResult:
    """One row per video with enough impressions created within the recency horizon of the
    newest, target CTR = clicks / impressions, read from `videos` through Arrow (on the Dask
    cluster's workers when one is set); bad rows are counted per reason and left out.
    Describes the data; the training step reads it."""
    return dg.MaterializeResult(
        metadata=describe_training_data(
            database.open(), retrain_settings.row_selection(), training_cluster
        )
    )


def _trigger(context: dg.AssetExecutionContext) -> str:
    trigger = context.run.tags.get(TRIGGER_TAG, "manual")
    if trigger not in TRIGGERS:
        raise dg.Failure(f"run tag {TRIGGER_TAG}={trigger!r} is not one of {TRIGGERS}")
    return trigger


def _report_metadata(record: DecisionRecord) -> dict[str, Any]:
    return {
        "status": dg.MetadataValue.text(record.status),
        "reason": dg.MetadataValue.text(record.reason),
        "trigger": dg.MetadataValue.text(record.trigger),
        "as_of": dg.MetadataValue.text(record.as_of.isoformat()),
        "gate": dg.MetadataValue.text(record.gate or "none"),
        "mae": _number(record.mae),
        "noise_mae": _number(record.noise_mae),
        "mae_lower_bound": _number(record.mae_lower_bound),
        "mae_upper_bound": _number(record.mae_upper_bound),
        "n_samples": _number(record.n_samples),
        "immature_rows": _number(record.immature_rows),
        "threshold": _number(record.threshold),
        "mae_before": _number(record.mae_before),
        "mae_after": _number(record.mae_after),
        "mae_improvement": _number(record.mae_improvement),
        "improvement_lower_bound": _number(
            record.improvement["lower"] if record.improvement else None
        ),
        "r2_before": _number(record.r2_before),
        "r2_after": _number(record.r2_after),
        "r2_delta": _number(record.r2_delta),
        "training_seconds": _number(record.training_seconds),
        "training_rows": _number(record.training_rows),
        "champion_before": dg.MetadataValue.text(record.champion_before or "none"),
        "champion_after": dg.MetadataValue.text(record.champion_after or "none"),
    }


_SLICE_SCHEMA = dg.TableSchema(
    columns=[
        dg.TableColumn("slice", "string"),
        dg.TableColumn("rows", "int"),
        dg.TableColumn("mae_before", "float", description="champion, hold-out"),
        dg.TableColumn("mae_after", "float", description="challenger, hold-out"),
        dg.TableColumn("worse_by", "float", description="challenger minus champion"),
        dg.TableColumn("worse_by_at_least", "float", description="its lower bound"),
        dg.TableColumn("regressed", "bool"),
    ]
)


def _promotion_check(record: DecisionRecord, promote: bool) -> dg.AssetCheckResult:
    """The verdict the promotion obeys, emitted before the promotion happens."""
    if record.challenger is None or record.champion_before is None:
        why = (
            f"no challenger was trained ({record.status})"
            if record.challenger is None
            else f"{record.challenger} is the first model; there is no champion to beat"
        )
        return dg.AssetCheckResult(
            check_name=PROMOTION_CHECK,
            asset_key="ctr_model",
            passed=True,
            description=f"not judged: {why}",
            metadata={"judged": False},
        )
    slices = [*record.slices, *([record.roas] if record.roas else [])]
    return dg.AssetCheckResult(
        check_name=PROMOTION_CHECK,
        asset_key="ctr_model",
        passed=promote,
        severity=dg.AssetCheckSeverity.WARN,
        description=record.reason,
        metadata={
            "judged": True,
            "improvement": _number(record.improvement["mae"] if record.improvement else None),
            "improvement_lower_bound": _number(
                record.improvement["lower"] if record.improvement else None
            ),
            "mae_before": _number(record.mae_before),
            "mae_after": _number(record.mae_after),
            "slices": dg.MetadataValue.table(
                records=[
                    dg.TableRecord(
                        {
                            "slice": s["name"],
                            "rows": s["rows"],
                            "mae_before": s["mae_before"],
                            "mae_after": s["mae_after"],
                            "worse_by": s["worse_by"],
                            "worse_by_at_least": s["worse_by_at_least"],
                            "regressed": s["regressed"],
                        }
                    )
                    for s in slices
                ],
                schema=_SLICE_SCHEMA,
            ),
        },
    )


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            "ctr_model",
            group_name=GROUP,
            kinds={"xgboost"},
            owners=OWNERS,
            skippable=True,
            deps=["prediction_accuracy", "real_training_data"],
            description=(
                "A challenger: an XGBoost CTR regressor trained on real_training_data, "
                "materialised only when the retrain gate says so, and judged against the "
                "champion on the same hold-out videos (check challenger_beats_champion). "
                "The file and its record are in the model registry."
            ),
        ),
        dg.AssetSpec(
            "champion_model",
            group_name=GROUP,
            kinds={"xgboost"},
            owners=OWNERS,
            skippable=True,
            deps=["ctr_model"],
            description=(
                "The model that serves predictions. Materialised when a challenger becomes "
                "champion: only after its paired advantage on the hold-out exceeded noise "
                "and no platform got clearly worse."
            ),
        ),
        dg.AssetSpec(
            "retrain_report",
            group_name=GROUP,
            kinds={"postgres"},
            owners=OWNERS,
            deps=["prediction_accuracy", "real_training_data", "ctr_model", "champion_model"],
            description=(
                "One decision record per check (no_retrain_needed, retrained, "
                "insufficient_data, rejected, error) with the evidence behind it; stored in "
                "retrain_decisions."
            ),
        ),
    ],
    check_specs=[
        dg.AssetCheckSpec(
            PROMOTION_CHECK,
            asset="ctr_model",
            description=(
                "The challenger's paired advantage over the champion on the same hold-out "
                "videos exceeds noise, and no platform or ROAS is clearly worse. Judged "
                "before the promotion, which follows this verdict."
            ),
        )
    ],
    pool="ctr_model_training",
)
def retrain_check(
    context: dg.AssetExecutionContext,
    config: TrainingConfig,
    database: CtrDatabase,
    models: ModelStore,
    retrain_settings: RetrainSettings,
    training_cluster: TrainingCluster,
):
    """Decides whether to retrain, trains and judges a challenger when it should (reading
    the training data itself, in process or on the cluster), promotes it only on evidence,
    and records the decision."""
    db = database.open()
    settings = retrain_settings.check_settings(training_params_for_check(db, config.params()))
    registry = models.registry(db)
    accuracy_described = upstream_description(context.instance, "prediction_accuracy")
    training_described = upstream_description(context.instance, "real_training_data")
    as_of = datetime.fromisoformat(str(accuracy_described["as_of"]))
    measured = accuracy_described.get("champion")

    def measure(version: str | None, evidence: GateEvidence | None = None) -> AccuracyReport:
        return measure_champion(
            db,
            version,
            as_of,
            settings.policy,
            settings.lookback_days,
            settings.maturity,
            evidence,
        )

    try:
        with training_cluster.source(
            db, retrain_settings.row_selection(), described_bad_rows(training_described)
        ) as training:
            judged = judge_retrain_check(
                registry,
                # The accuracy the upstream step described, measured again as of the same
                # moment: the same rows, so the same evidence (no pickled copy is passed);
                # the gate's evidence is taken from the description when its settings are
                # these.
                measure(
                    None if measured in (None, "none yet") else str(measured),
                    described_evidence(accuracy_described, settings),
                ),
                training,
                settings,
                _trigger(context),
                run_id=context.run.run_id,
                remeasure=measure,
            )
        if judged.outcome.challenger is not None:
            yield _model_result(judged.outcome.challenger, promoted=judged.promote)
        yield _promotion_check(judged.outcome.record, judged.promote)
        outcome = judged.conclude()
    except RetrainError as error:
        store_decision(db, error.record)
        yield dg.MaterializeResult(
            asset_key="retrain_report", metadata=_report_metadata(error.record)
        )
        raise dg.Failure(
            description=f"retrain failed, the champion is unchanged: {error.record.reason}",
            metadata={"status": "error"},
        ) from error

    record = outcome.record
    store_decision(db, record)
    if record.status == "retrained" and outcome.challenger is not None:
        yield dg.MaterializeResult(
            asset_key="champion_model",
            metadata={
                "version": outcome.challenger.version,
                "previous": record.champion_before or "none",
                "reason": record.reason,
                "improvement_lower_bound": _number(
                    record.improvement["lower"] if record.improvement else None
                ),
            },
        )
    metadata = _report_metadata(record)
    if outcome.holdout is not None:
        metadata["holdout_predicted_vs_actual"] = _image(holdout_scatter_png(outcome.holdout))
    metadata["accuracy_trend"] = _image(
        accuracy_trend_png(recent_decisions(db, 60), record.threshold)
    )
    yield dg.MaterializeResult(asset_key="retrain_report", metadata=metadata)


def _model_result(model: ModelVersion, promoted: bool) -> dg.MaterializeResult:
    return dg.MaterializeResult(
        asset_key="ctr_model",
        metadata={
            "version": model.version,
            "to_be_promoted": promoted,
            "holdout_mae": _number(model.holdout_mae),
            "holdout_r2": _number(model.holdout_r2),
            "training_rows": model.training_rows,
            "holdout_rows": model.holdout_rows,
            "training_seconds": _number(model.training_seconds),
            "best_iteration": int(model.params["best_iteration"]),
            "file": dg.MetadataValue.path(model.file_path),
            "sha256": model.sha256,
        },
    )
