"""The accuracy report as an asset: refreshed after each scheduled check and on demand."""

from datetime import datetime
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import Field

from ctr_assets import settings
from ctr_assets.orchestration.assets import GROUP, OWNERS
from ctr_assets.orchestration.resources import CtrDatabase, RetrainSettings
from ctr_assets.orchestration.upstream import upstream_description
from ctr_assets.reporting.accuracy_report import (
    DEFAULT_DAYS,
    AccuracyReportDocument,
    build_report,
    report_file_name,
    save_report,
)
from ctr_assets.reporting.figures import Figure, ReportSettings
from ctr_assets.reporting.history import Period, day_judged


class ReportConfig(dg.Config):
    days: int = Field(
        default=DEFAULT_DAYS,
        ge=1,
        le=3650,
        description="Days the report covers, ending with the day the latest check judged.",
    )
    roas_accuracy_target: float = Field(
        default=ReportSettings.roas_accuracy_target,
        description="ROAS accuracy the report calls met when above it (0.85: 85%).",
    )
    r2_target: float = Field(
        default=ReportSettings.r2_target,
        description="R² of the live CTR predictions the report calls met when above it.",
    )


class ReportStore(dg.ConfigurableResource):
    """Where the report files go (the HTML page and the JSON beside it)."""

    directory: str | None = Field(
        default=None, description="Folder for report files. Unset: CTR_HOME/reports."
    )

    def folder(self) -> Path:
        return Path(self.directory) if self.directory else settings.ctr_home() / "reports"


def report_settings(
    retrain: RetrainSettings,
    roas_accuracy_target: float = ReportSettings.roas_accuracy_target,
    r2_target: float = ReportSettings.r2_target,
) -> ReportSettings:
    """The report judges by the loop's own settings: the CTR MAE target is its threshold."""
    return ReportSettings(
        mae_threshold=retrain.mae_threshold,
        roas_accuracy_target=roas_accuracy_target,
        r2_target=r2_target,
        lookback_days=retrain.lookback_days,
        confidence=retrain.confidence,
        dispersion=retrain.dispersion,
        min_samples=retrain.min_samples,
        maturity=retrain.maturity(),
    )


def _number(figure: Figure) -> dg.MetadataValue:
    """A number stays a number (it plots over time); an unknown one is null, never 0."""
    if figure.value is None:
        return dg.MetadataValue.null()
    if isinstance(figure.value, int):
        return dg.MetadataValue.int(figure.value)
    return dg.MetadataValue.float(float(figure.value))


_TARGETS_SCHEMA = dg.TableSchema(
    columns=[
        dg.TableColumn("figure", "string", description="its key in the report's JSON"),
        dg.TableColumn("value", "float", description="empty when it could not be computed"),
        dg.TableColumn("target", "string"),
        dg.TableColumn("verdict", "string", description="met, missed, undecided or not judged"),
        dg.TableColumn("why_missing", "string", description="why there is no value"),
    ]
)


def targets_table(headline: dict[str, Figure]) -> dg.MetadataValue:
    """Each figure that has a target, its value and the verdict, as a table in the UI."""
    return dg.MetadataValue.table(
        records=[
            dg.TableRecord(
                {
                    "figure": name,
                    "value": None if figure.value is None else float(figure.value),
                    "target": figure.target,
                    "verdict": figure.verdict or "not judged",
                    "why_missing": figure.missing if figure.value is None else None,
                }
            )
            for name, figure in headline.items()
            if figure.target
        ],
        schema=_TARGETS_SCHEMA,
    )


def report_metadata(document: AccuracyReportDocument, html: Path, json: Path) -> dict[str, Any]:
    """The headline figures as numbers, the targets' verdicts in words, and the files."""
    headline = document.headline()
    metadata: dict[str, Any] = {name: _number(figure) for name, figure in headline.items()}
    mae = headline["ctr_mae"]
    metadata["ctr_mae_lower_bound"] = _number(Figure(mae.lower, missing="no interval"))
    metadata["ctr_mae_upper_bound"] = _number(Figure(mae.upper, missing="no upper bound"))
    metadata["targets"] = targets_table(headline)
    metadata["notes"] = dg.MetadataValue.text(" ".join(document.notes) or "none")
    metadata["period"] = dg.MetadataValue.text(
        f"{document.period.first_day} to {document.period.last_day}"
    )
    metadata["report"] = dg.MetadataValue.path(html)
    metadata["report_json"] = dg.MetadataValue.path(json)
    return metadata


@dg.asset(
    group_name=GROUP,
    kinds={"postgres", "html"},
    owners=OWNERS,
    deps=["retrain_report"],
)
def accuracy_report(
    context: dg.AssetExecutionContext,
    config: ReportConfig,
    database: CtrDatabase,
    retrain_settings: RetrainSettings,
    reports: ReportStore,
) -> dg.MaterializeResult:
    """The accuracy report a person outside the ML team can read: the days up to the
    latest check's, with the live accuracy against its targets, every retrain and
    promotion, the checks' reliability and the ranking value; one self-contained HTML
    file (path in the metadata) and the same figures as JSON."""
    latest_check = upstream_description(context.instance, "retrain_report")
    period = Period.ending(
        day_judged(datetime.fromisoformat(str(latest_check["as_of"]))), config.days
    )
    document = build_report(
        database.open(),
        period,
        report_settings(retrain_settings, config.roas_accuracy_target, config.r2_target),
    )
    html, json = save_report(document, reports.folder() / report_file_name(period))
    return dg.MaterializeResult(metadata=report_metadata(document, html, json))
