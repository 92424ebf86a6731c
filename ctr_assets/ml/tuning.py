"""A hyperparameter search, the way users run one: Optuna proposes XGBoost settings, each
trial trains a challenger on the videos outside the hold-out and is scored on the shared
hold-out with the weights promotion uses (impressions times recency).

The study lives in Optuna's RDB storage (the caller passes it: the product's PostgreSQL),
so a search can be stopped and resumed and its trials inspected. Trials from earlier
sessions may have been scored on other data, so the best trial is not taken on its word:
its params and the config in force are both trained again on today's frame and compared
by the promotion rule (`judge_promotion`: a paired advantage beyond noise on the same
hold-out videos, no platform clearly worse). Only then may it replace the config in force.

Trials are chosen on the hold-out they are judged on: a mild selection effect, which the
promotion rule's margin (`min_improvement`) and its confidence bound absorb for a search
of tens of trials over a few parameters.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import optuna
import pandas as pd

from ctr_assets.ml.evaluation import Holdout, predict_ctr, take_holdout
from ctr_assets.ml.promotion import PromotionPolicy, PromotionVerdict, judge_promotion
from ctr_assets.ml.split import TrainingSplit, training_split
from ctr_assets.ml.training import TrainingParams, train_ctr_model

Suggest = Callable[[optuna.Trial, TrainingParams], TrainingParams]


def suggest_params(trial: optuna.Trial, base: TrainingParams) -> TrainingParams:
    """The search space: what matters for boosted trees on a few dozen features."""
    return replace(
        base,
        learning_rate=trial.suggest_float("learning_rate", 0.02, 0.5, log=True),
        max_depth=trial.suggest_int("max_depth", 3, 8),
        min_child_weight=trial.suggest_float("min_child_weight", 0.1, 20.0, log=True),
        subsample=trial.suggest_float("subsample", 0.5, 1.0),
        colsample_bytree=trial.suggest_float("colsample_bytree", 0.5, 1.0),
        reg_lambda=trial.suggest_float("reg_lambda", 0.01, 10.0, log=True),
        max_bin=trial.suggest_categorical("max_bin", [64, 128, 256]),
    )


@dataclass(frozen=True)
class TuningData:
    """One frame, split and weighted once, that every trial trains and is scored on."""

    frame: pd.DataFrame
    weights: np.ndarray | None
    split: TrainingSplit
    holdout: Holdout
    platforms: np.ndarray
    validation_fraction: float

    @classmethod
    def of(
        cls, frame: pd.DataFrame, weights: np.ndarray | None, validation_fraction: float
    ) -> TuningData:
        split = training_split(frame["video_id"], validation_fraction)
        holdout = take_holdout(frame, weights, split.holdout)
        platforms = holdout.column(frame, "platform").astype(str)
        return cls(frame, weights, split, holdout, platforms, validation_fraction)

    def predict(self, params: TrainingParams) -> tuple[np.ndarray, int]:
        """Trains with `params`; the hold-out predictions and the best iteration."""
        same_split = params.validation_fraction == self.validation_fraction
        trained = train_ctr_model(
            self.frame, params, self.weights, split=self.split if same_split else None
        )
        return predict_ctr(trained.booster, self.holdout.features), trained.best_iteration

    def mae(self, predicted: np.ndarray) -> float:
        errors = np.abs(predicted - self.holdout.actual)
        return float(np.average(errors, weights=self.holdout.weights))


@dataclass(frozen=True)
class TuningOutcome:
    study_name: str
    trials_run: int  # in this session
    trials_total: int  # in the study, earlier sessions included
    best_trial: int
    best_params: TrainingParams
    best_mae: float
    current_mae: float
    verdict: PromotionVerdict
    holdout_rows: int

    @property
    def adopt(self) -> bool:
        return self.verdict.promote


def run_search(
    data: TuningData,
    current: TrainingParams,
    storage: optuna.storages.BaseStorage | str,
    study_name: str,
    *,
    trials: int,
    timeout_s: float | None,
    seed: int = 0,
    policy: PromotionPolicy | None = None,
    suggest: Suggest = suggest_params,
) -> TuningOutcome:
    """Runs up to `trials` trials (or until `timeout_s`), then judges the study's best
    params against `current` on the hold-out (see the module docstring)."""
    policy = policy or PromotionPolicy()
    study = optuna.create_study(
        study_name=study_name,
        storage=storage,
        direction="minimize",
        sampler=optuna.samplers.TPESampler(seed=seed),
        load_if_exists=True,
    )
    before = len(study.trials)

    def objective(trial: optuna.Trial) -> float:
        params = suggest(trial, current)
        predicted, best_iteration = data.predict(params)
        trial.set_user_attr("best_iteration", best_iteration)
        trial.set_user_attr("params", params.as_dict())
        return data.mae(predicted)

    study.optimize(objective, n_trials=trials, timeout=timeout_s, gc_after_trial=True)
    finished = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not finished:
        raise RuntimeError(
            f"study {study_name!r} has no finished trial; give it more trials or time"
        )
    best = study.best_trial
    best_params = TrainingParams.from_dict(best.user_attrs["params"])
    best_predicted, _ = data.predict(best_params)
    current_predicted, _ = data.predict(current)
    verdict = judge_promotion(
        data.holdout.actual,
        current_predicted,
        best_predicted,
        data.holdout.weights,
        data.platforms,
        policy,
    )
    return TuningOutcome(
        study_name=study_name,
        trials_run=len(study.trials) - before,
        trials_total=len(study.trials),
        best_trial=best.number,
        best_params=best_params,
        best_mae=data.mae(best_predicted),
        current_mae=data.mae(current_predicted),
        verdict=verdict,
        holdout_rows=len(data.holdout),
    )
