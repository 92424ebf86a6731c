"""The asset graph: accuracy -> (with training data) -> model and decision report."""

import base64
from datetime import UTC, datetime
from typing import Any

import dagster as dg
from pydantic import Field

from ctr_assets.data.accuracy import AccuracyReport, measure_accuracy
from ctr_assets.data.training_frame import TrainingData, load_training_frame
from ctr_assets.ml.training import TrainingParams
from ctr_assets.orchestration.resources import CtrDatabase, ModelStore, RetrainSettings
from ctr_assets.reporting.plots import accuracy_trend_png, holdout_scatter_png
from ctr_assets.retraining.check import CheckSettings, RetrainError, run_retrain_check
from ctr_assets.retraining.record import TRIGGERS, DecisionRecord, recent_decisions, store_decision

GROUP = "ctr_retraining"
TRIGGER_TAG = "ctr_assets/trigger"
OWNERS = ["team:ml-engineering"]
MAE_CHECK = "mae_within_threshold"


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
    nthread: int = Field(default=_DEFAULTS.nthread, description="Threads XGBoost may use.")
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


def _markdown_table(header: list[str], rows: list[list[Any]]) -> dg.MetadataValue:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return dg.MetadataValue.md("\n".join(lines))


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
    window (computed by PostgreSQL); only the champion's own predictions count."""
    db = database.open()
    champion = models.registry(db).champion()
    report = measure_accuracy(
        db, champion.version if champion else None, _as_of(config), retrain_settings.lookback_days
    )
    metadata: dict[str, Any] = {
        "mae": _number(report.mae),
        "n_samples": _number(report.n_samples),
        "r2": _number(report.r2),
        "rmse": _number(report.rmse),
        "mean_predicted_ctr": _number(report.mean_predicted_ctr),
        "mean_actual_ctr": _number(report.mean_actual_ctr),
        "bias": _number(report.bias),
        "roas_accuracy": _number(report.roas_accuracy),
        "roas_samples": _number(report.roas_samples),
        "threshold": _number(retrain_settings.mae_threshold),
        "champion": dg.MetadataValue.text(report.model_version or "none yet"),
        "as_of": dg.MetadataValue.text(report.as_of.isoformat()),
        "by_platform": _markdown_table(
            ["platform", "samples", "MAE", "bias"],
            [
                [p.platform, p.n_samples, f"{p.mae:.4f}", f"{p.bias:+.4f}"]
                for p in report.by_platform
            ],
        ),
    }
    yield dg.Output(report, metadata=metadata)
    yield _mae_check_result(report, retrain_settings)


def _mae_check_result(report: AccuracyReport, limits: RetrainSettings) -> dg.AssetCheckResult:
    if report.mae is None or report.n_samples < limits.min_samples:
        return dg.AssetCheckResult(
            check_name=MAE_CHECK,
            passed=True,
            description=(
                f"not judged: {report.n_samples} resolved predictions of the champion, "
                f"{limits.min_samples} needed"
            ),
            metadata={"n_samples": report.n_samples},
        )
    return dg.AssetCheckResult(
        check_name=MAE_CHECK,
        passed=report.mae <= limits.mae_threshold,
        severity=dg.AssetCheckSeverity.WARN,
        description=f"MAE {report.mae:.4f} vs threshold {limits.mae_threshold:.4f}",
        metadata={"mae": report.mae, "threshold": limits.mae_threshold},
    )


@dg.asset(group_name=GROUP, kinds={"postgres", "pandas"}, owners=OWNERS)
def real_training_data(
    context: dg.AssetExecutionContext, database: CtrDatabase, retrain_settings: RetrainSettings
) -> dg.Output[TrainingData]:
    """One row per video with enough impressions, target CTR = clicks / impressions, read
    from `videos` through Arrow; bad rows are counted per reason and left out."""
    data = load_training_frame(database.open(), retrain_settings.min_impressions)
    return dg.Output(
        data,
        metadata={
            "dagster/row_count": len(data.frame),
            "rows_read": data.rows_read,
            "bad_rows": data.bad_row_total,
            **{f"bad_rows/{reason}": count for reason, count in data.bad_rows.items()},
            "bad_rows_by_reason": _markdown_table(
                ["reason", "rows"], [[r, c] for r, c in data.bad_rows.items()]
            ),
            "min_impressions": retrain_settings.min_impressions,
        },
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
        "mae": _number(record.mae),
        "n_samples": _number(record.n_samples),
        "threshold": _number(record.threshold),
        "mae_before": _number(record.mae_before),
        "mae_after": _number(record.mae_after),
        "mae_improvement": _number(record.mae_improvement),
        "r2_before": _number(record.r2_before),
        "r2_after": _number(record.r2_after),
        "r2_delta": _number(record.r2_delta),
        "training_seconds": _number(record.training_seconds),
        "training_rows": _number(record.training_rows),
        "champion_before": dg.MetadataValue.text(record.champion_before or "none"),
        "champion_after": dg.MetadataValue.text(record.champion_after or "none"),
    }


@dg.multi_asset(
    outs={
        "ctr_model": dg.AssetOut(
            group_name=GROUP,
            kinds={"xgboost"},
            owners=OWNERS,
            is_required=False,
            description=(
                "An XGBoost CTR regressor trained on real_training_data, materialised only "
                "when the retrain decision says so; promoted to champion only if it beats "
                "the champion on the same hold-out videos."
            ),
        ),
        "retrain_report": dg.AssetOut(
            group_name=GROUP,
            kinds={"postgres"},
            owners=OWNERS,
            description=(
                "One decision record per check (no_retrain_needed, retrained, "
                "insufficient_data, rejected, error) with the figures behind it."
            ),
        ),
    },
    ins={
        "prediction_accuracy": dg.AssetIn("prediction_accuracy"),
        "real_training_data": dg.AssetIn("real_training_data"),
    },
    internal_asset_deps={
        "ctr_model": {dg.AssetKey("prediction_accuracy"), dg.AssetKey("real_training_data")},
        "retrain_report": {
            dg.AssetKey("prediction_accuracy"),
            dg.AssetKey("real_training_data"),
            dg.AssetKey("ctr_model"),
        },
    },
    pool="ctr_model_training",
)
def retrain_check(
    context: dg.AssetExecutionContext,
    config: TrainingConfig,
    prediction_accuracy: AccuracyReport,
    real_training_data: TrainingData,
    database: CtrDatabase,
    models: ModelStore,
    retrain_settings: RetrainSettings,
):
    """Decides whether to retrain, trains and judges a challenger when it should, and
    records the decision."""
    db = database.open()
    settings = CheckSettings(
        policy=retrain_settings.policy(),
        min_training_rows=retrain_settings.min_training_rows,
        recency_half_life_days=retrain_settings.recency_half_life_days,
        training=config.params(),
    )
    try:
        outcome = run_retrain_check(
            models.registry(db),
            prediction_accuracy,
            real_training_data,
            settings,
            _trigger(context),
            run_id=context.run.run_id,
        )
    except RetrainError as error:
        store_decision(db, error.record)
        yield dg.Output(
            error.record, output_name="retrain_report", metadata=_report_metadata(error.record)
        )
        raise dg.Failure(
            description=f"retrain failed, the champion is unchanged: {error.record.reason}",
            metadata={"status": "error"},
        ) from error

    record = outcome.record
    store_decision(db, record)
    if outcome.challenger is not None:
        model = outcome.challenger
        yield dg.Output(
            model,
            output_name="ctr_model",
            metadata={
                "version": model.version,
                "promoted": record.status == "retrained",
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
    metadata = _report_metadata(record)
    if outcome.holdout is not None:
        metadata["holdout_predicted_vs_actual"] = _image(holdout_scatter_png(outcome.holdout))
    metadata["accuracy_trend"] = _image(
        accuracy_trend_png(recent_decisions(db, 60), record.threshold)
    )
    yield dg.Output(record, output_name="retrain_report", metadata=metadata)
