"""MLflow as a mirror of the model registry, for teams that track their models there.

Our registry stays the source of truth: it promotes atomically, under a lock, with every
file checksum-verified. MLflow follows it. `MlflowMirror.sync` reconciles MLflow with the
registry as it is now, so one call both mirrors what just happened and repairs whatever an
earlier call failed to mirror (MLflow down, a network error): every model version not yet
in MLflow is logged as a run (parameters, hold-out figures, its decision record as an
artifact, the booster with MLflow's XGBoost flavour) and registered as a version of the
registered model, tagged with our version; then the alias `champion` is moved to the
version our champion is. A sync never raises: it returns what it did or why it failed, and
the check puts that in its decision record.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import requests

from ctr_assets.ml.model_files import ModelFileError
from ctr_assets.models.registry import ModelRegistry, ModelVersion

CHAMPION_ALIAS = "champion"
VERSION_TAG = "ctr_assets.version"
DEFAULT_REGISTERED_MODEL = "ctr_model"
DEFAULT_EXPERIMENT = "ctr_assets"
# A mirror that waits minutes for a server that is down holds up the check it reports on:
# MLflow's own default is 7 retries with exponential backoff, 120 s per request.
_CLIENT_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_TIMEOUT": "30"}


@dataclass(frozen=True)
class MirrorResult:
    """What a sync did, as the decision record's `mlflow_mirror` key shows it."""

    status: str  # "mirrored" or "failed"
    tracking_uri: str
    registered_model: str
    logged: list[str] = field(default_factory=list)  # our versions newly in MLflow
    champion: str | None = None  # our champion's version
    champion_mlflow_version: str | None = None  # where the alias `champion` points
    skipped: list[str] = field(default_factory=list)  # versions whose file fails its checksum
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class MlflowMirror:
    tracking_uri: str
    registered_model: str = DEFAULT_REGISTERED_MODEL
    experiment: str = DEFAULT_EXPERIMENT

    @classmethod
    def from_environment(cls, tracking_uri: str | None = None) -> MlflowMirror | None:
        """The mirror `MLFLOW_TRACKING_URI` asks for (or `tracking_uri`); None when unset."""
        uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
        if not uri:
            return None
        return cls(
            uri,
            os.environ.get("CTR_MLFLOW_REGISTERED_MODEL") or DEFAULT_REGISTERED_MODEL,
            os.environ.get("CTR_MLFLOW_EXPERIMENT") or DEFAULT_EXPERIMENT,
        )

    @property
    def shown_uri(self) -> str:
        """The tracking URI without credentials, for records and messages."""
        parts = urlsplit(self.tracking_uri)
        if parts.password is None and parts.username is None:
            return self.tracking_uri
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
        return parts._replace(netloc=f"***@{host}{port}").geturl()

    def sync(
        self, registry: ModelRegistry, records: Mapping[str, Mapping[str, Any]] | None = None
    ) -> MirrorResult:
        """Brings MLflow up to date with `registry`; never raises.

        `records` holds decision records not yet stored (our version -> record); the others
        are read from `retrain_decisions`.
        """
        logged: list[str] = []
        skipped: list[str] = []
        # MLflow's client prints run links on stdout, where `check-retrain` prints its JSON.
        with contextlib.redirect_stdout(sys.stderr):
            return self._sync(registry, records, logged, skipped)

    def _sync(
        self,
        registry: ModelRegistry,
        records: Mapping[str, Mapping[str, Any]] | None,
        logged: list[str],
        skipped: list[str],
    ) -> MirrorResult:
        try:
            self._probe()
            mlflow, client = self._client()
            experiment_id = self._experiment_id(client)
            self._ensure_registered_model(client, mlflow)
            mirrored = self._mirrored_versions(client)
            for model in registry.versions():
                if model.version in mirrored:
                    continue
                try:
                    booster = registry.load(model)
                except ModelFileError:
                    skipped.append(model.version)
                    continue
                record = (records or {}).get(model.version) or _stored_record(
                    registry, model.version
                )
                mirrored[model.version] = self._log_version(
                    mlflow, experiment_id, model, booster, record
                )
                logged.append(model.version)
            champion = registry.champion()
            target = self._point_alias(client, mirrored, champion)
        except Exception as error:  # a mirror that fails never fails the check
            return MirrorResult(
                "failed",
                self.shown_uri,
                self.registered_model,
                logged=logged,
                skipped=skipped,
                error=f"{type(error).__name__}: {' '.join(str(error).split())[:500]}",
            )
        return MirrorResult(
            "mirrored",
            self.shown_uri,
            self.registered_model,
            logged=logged,
            champion=champion.version if champion else None,
            champion_mlflow_version=target,
            skipped=skipped,
        )

    def _probe(self) -> None:
        """Fails in seconds, not after MLflow's retries, when the server does not answer."""
        if urlsplit(self.tracking_uri).scheme not in {"http", "https"}:
            return
        try:
            requests.get(f"{self.tracking_uri.rstrip('/')}/health", timeout=5).raise_for_status()
        except requests.RequestException as error:
            raise ConnectionError(
                f"the MLflow server at {self.shown_uri} does not answer ({type(error).__name__})"
                "; the next check retries"
            ) from None

    def _client(self):
        try:
            import mlflow
            from mlflow import MlflowClient
        except ImportError as error:
            raise RuntimeError(
                "MLFLOW_TRACKING_URI is set but MLflow is not installed: "
                "pip install 'ctr_assets[mlflow]'"
            ) from error
        for name, value in _CLIENT_DEFAULTS.items():
            os.environ.setdefault(name, value)
        mlflow.set_tracking_uri(self.tracking_uri)
        return mlflow, MlflowClient(tracking_uri=self.tracking_uri)

    def _experiment_id(self, client) -> str:
        experiment = client.get_experiment_by_name(self.experiment)
        if experiment is not None:
            return experiment.experiment_id
        return client.create_experiment(self.experiment)

    def _ensure_registered_model(self, client, mlflow) -> None:
        try:
            client.create_registered_model(
                self.registered_model,
                description="Mirrored from ctr_assets; its model registry is the source of truth.",
            )
        except mlflow.exceptions.MlflowException as error:
            if error.error_code != "RESOURCE_ALREADY_EXISTS":
                raise

    def _mirrored_versions(self, client) -> dict[str, str]:
        """Our version -> MLflow's version number, from the tag each registration carries."""
        found: dict[str, str] = {}
        page_token = None
        while True:
            page = client.search_model_versions(
                f"name='{self.registered_model}'", page_token=page_token
            )
            for version in page:
                ours = version.tags.get(VERSION_TAG)
                if ours:
                    found.setdefault(ours, str(version.version))
            page_token = page.token
            if not page_token:
                return found

    def _log_version(
        self,
        mlflow,
        experiment_id: str,
        model: ModelVersion,
        booster,
        record: Mapping[str, Any] | None,
    ) -> str:
        import mlflow.xgboost
        import xgboost

        tags = {VERSION_TAG: model.version, "ctr_assets.sha256": model.sha256}
        if record is not None:
            tags["ctr_assets.status"] = str(record.get("status"))
        with mlflow.start_run(experiment_id=experiment_id, run_name=model.version, tags=tags):
            mlflow.log_params({key: _param(value) for key, value in model.params.items()})
            mlflow.log_metrics(_metrics(model, record))
            if record is not None:
                mlflow.log_dict(dict(record), "decision_record.json")
            info = mlflow.xgboost.log_model(
                booster,
                name="model",
                model_format="json",
                # Named, not inferred: inference loads the model in a subprocess.
                pip_requirements=[f"xgboost=={xgboost.__version__}"],
            )
        registered = mlflow.register_model(
            info.model_uri, self.registered_model, tags={VERSION_TAG: model.version}
        )
        return str(registered.version)

    def _point_alias(
        self, client, mirrored: Mapping[str, str], champion: ModelVersion | None
    ) -> str | None:
        if champion is None:
            return None
        target = mirrored.get(champion.version)
        if target is None:
            raise RuntimeError(
                f"the champion {champion.version} is not in MLflow (its file fails its "
                "checksum), so the alias champion was not moved"
            )
        current_version = client.get_registered_model(self.registered_model).aliases.get(
            CHAMPION_ALIAS
        )
        if current_version is None or str(current_version) != target:
            client.set_registered_model_alias(self.registered_model, CHAMPION_ALIAS, target)
        return target


def _param(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return text[:6000]  # MLflow's limit on a parameter's value


def _metrics(model: ModelVersion, record: Mapping[str, Any] | None) -> dict[str, float]:
    figures: dict[str, Any] = {
        "holdout_mae": model.holdout_mae,
        "holdout_r2": model.holdout_r2,
        "training_seconds": model.training_seconds,
        "training_rows": model.training_rows,
        "holdout_rows": model.holdout_rows,
    }
    if record is not None:
        for key in ("mae", "n_samples", "mae_before", "mae_after", "r2_before", "r2_after"):
            figures[f"check_{key}"] = record.get(key)
    return {key: float(value) for key, value in figures.items() if value is not None}


def _stored_record(registry: ModelRegistry, version: str) -> dict[str, Any] | None:
    """The decision record of the check that trained `version`, if it was stored."""
    with registry.db.connect() as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT record FROM retrain_decisions WHERE record->>'challenger' = %s "
            "ORDER BY id DESC LIMIT 1",
            (version,),
        )
        row = cur.fetchone()
    return row[0] if row else None
