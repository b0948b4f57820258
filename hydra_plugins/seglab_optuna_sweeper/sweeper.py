"""The sweep loop: ask Optuna for a batch of trials, run them through the configured launcher,
tell Optuna how each ended (complete, failed or pruned), and write the best values."""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

from hydra.core.plugins import Plugins
from hydra.core.utils import JobReturn
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf

from seglab.errors import SweepError, fail

log = logging.getLogger(__name__)
PROG = "seglab-train"


class SeglabOptunaSweeper(Sweeper):
    """Each launch adds ``n_trials`` trials to the study in ``storage`` (created on the first
    launch, resumed on the next), ``n_jobs`` at a time.

    Every job gets ``hydra.sweeper.trial=<number>``, so a trial process can open the study and
    report its per-validation values for the pruner (``seglab.pruning``).
    """

    def __init__(self, **settings: Any) -> None:
        settings.pop("trial", None)
        self.settings = settings

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        self.config = config
        self.hydra_context = hydra_context
        self.launcher = Plugins.instance().instantiate_launcher(
            config=config, hydra_context=hydra_context, task_function=task_function
        )

    def sweep(self, arguments: list[str]) -> None:
        try:
            self._sweep(arguments)
        except SweepError as error:
            fail(PROG, str(error))

    def _sweep(self, arguments: list[str]) -> None:
        import optuna

        from seglab.pruning import PRUNED_ATTR, build_pruner

        from .space import build_sampler, override_value, parse_space

        s = self.settings
        space, fixed = parse_space(dict(s["params"] or {}), arguments)
        sampler = build_sampler(s["sampler"], s["seed"], s["n_startup_trials"], space)
        pruner = build_pruner(s["pruner"], s["pruner_startup_trials"], s["pruner_warmup_epochs"])
        if s["direction"] not in ("maximize", "minimize"):
            raise SweepError(
                f"hydra.sweeper.direction={s['direction']} is neither maximize nor minimize"
            )
        if int(s["n_jobs"]) < 1 or int(s["n_trials"]) < 0:
            raise SweepError("hydra.sweeper.n_jobs must be >= 1 and hydra.sweeper.n_trials >= 0")
        self._check_space(space, fixed)
        storage = str(s["storage"])
        if storage.startswith("sqlite:///"):  # SQLite does not create the study file's folder
            Path(storage.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        try:
            study = optuna.create_study(
                study_name=s["study_name"],
                storage=storage,
                sampler=sampler,
                pruner=pruner,
                direction=s["direction"],
                load_if_exists=True,
            )
        except Exception as error:
            message = str(error).splitlines()[0] if str(error) else type(error).__name__
            raise SweepError(
                f"hydra.sweeper.storage={storage} cannot be opened: {message}"
            ) from None
        log.info(
            "study %s in %s: sampler %s, pruner %s, %s %d trials",
            study.study_name,
            storage,
            s["sampler"],
            s["pruner"],
            s["direction"],
            s["n_trials"],
        )
        n_trials = int(s["n_trials"])
        if s["sampler"] == "grid":
            n_trials = min(n_trials, _grid_left(study, space))
        job_idx = 0
        while n_trials > 0:
            trials = [study.ask(space) for _ in range(min(int(s["n_jobs"]), n_trials))]
            overrides = [
                [
                    *(f"{key}={override_value(value)}" for key, value in trial.params.items()),
                    *fixed,
                    f"hydra.sweeper.trial={trial.number}",
                ]
                for trial in trials
            ]
            returns = self.launcher.launch(overrides, initial_job_idx=job_idx)
            job_idx += len(returns)
            # read afresh: the study object caches the running trials it asked for, while the
            # trial processes wrote their reports and pruning marks to the storage
            written = optuna.load_study(study_name=study.study_name, storage=storage).trials
            for trial, job in zip(trials, returns, strict=True):
                _tell(study, trial, job, pruned=PRUNED_ATTR in written[trial.number].user_attrs)
            n_trials -= len(trials)
        _write_results(study, Path(self.config.hydra.sweep.dir))

    def _check_space(self, space: dict[str, Any], fixed: list[str]) -> None:
        """Compose a trial's config with each end or choice of each searched key in turn, before
        any trial runs: a key or an option that does not exist would otherwise stop the search
        halfway, with trials left running in the study."""
        from optuna.distributions import CategoricalDistribution

        from .space import override_value

        candidates = {
            key: list(d.choices) if isinstance(d, CategoricalDistribution) else [d.low, d.high]
            for key, d in space.items()
        }
        for key, values in candidates.items():
            for value in values:
                override = f"{key}={override_value(value)}"
                try:
                    self.hydra_context.config_loader.load_sweep_config(
                        self.config, [override, *fixed]
                    )
                except Exception as error:
                    reason = str(error).strip().splitlines()[0]
                    raise SweepError(
                        f"hydra.sweeper.params: {override} cannot be run: {reason}"
                    ) from None


def _grid_left(study: Any, space: dict[str, Any]) -> int:
    """Grid points that no finished trial of the study has taken yet."""
    import optuna

    from .space import grid

    total = math.prod(len(values) for values in grid(space).values())
    states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    return max(0, total - len(study.get_trials(deepcopy=False, states=states)))


def _tell(study: Any, trial: Any, job: JobReturn, pruned: bool) -> None:
    """Record how a job ended: an error or a missing value is FAIL, a stop by the pruner is
    PRUNED (the trial process marked it so), anything else COMPLETE."""
    from optuna.trial import TrialState

    try:
        value = job.return_value
    except Exception as error:
        log.warning("trial %d failed: %s: %s", trial.number, type(error).__name__, error)
        study.tell(trial, state=TrialState.FAIL)
        return
    if pruned:
        log.info("trial %d was pruned", trial.number)
        study.tell(trial, state=TrialState.PRUNED)
        return
    try:
        study.tell(trial, float(value))
    except (TypeError, ValueError):
        log.warning("trial %d failed: it returned %r, not a number", trial.number, value)
        study.tell(trial, state=TrialState.FAIL)


def _write_results(study: Any, sweep_dir: Path) -> None:
    from optuna.trial import TrialState

    states = [trial.state for trial in study.get_trials(deepcopy=False)]
    results: dict[str, Any] = {
        "name": "optuna",
        "study_name": study.study_name,
        "trials": {state.name: states.count(state) for state in TrialState if state in states},
    }
    try:
        best = study.best_trial
    except ValueError:
        log.warning("no trial of study %s has completed", study.study_name)
    else:
        results |= {"best_trial": best.number, "best_params": best.params, "best_value": best.value}
        log.info("best trial %d: %s = %s", best.number, best.params, best.value)
    sweep_dir.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(OmegaConf.create(results), sweep_dir / "optimization_results.yaml")
