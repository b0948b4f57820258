"""The sweep loop: ask Optuna for a batch of trials, run them through the configured launcher,
tell Optuna how each ended (complete, failed or pruned), and write the best values."""

from __future__ import annotations

import logging
import math
import warnings
from pathlib import Path
from typing import Any

from hydra.core.plugins import Plugins
from hydra.core.utils import JobReturn
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf

from seglab.errors import SeglabError, SweepError, fail
from seglab.extras import require

log = logging.getLogger(__name__)
PROG = "seglab-train"


class SeglabOptunaSweeper(Sweeper):
    """Each launch adds ``n_trials`` trials to the study in ``storage`` (created on the first
    launch, resumed on the next), ``n_jobs`` at a time.

    Every job gets ``hydra.sweeper.trial=<number>``, so a trial process can open the study and
    report its per-validation values for the pruner (``seglab.sweeps.trial_pruning``).
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
        except SeglabError as error:  # a SweepError, or Optuna missing
            fail(PROG, str(error))

    def _sweep(self, arguments: list[str]) -> None:
        search = self.config.hydra.runtime.choices.get("hparams_search")
        optuna = require("optuna", f"hparams_search={search}" if search else "the Optuna sweeper")

        from seglab.sweeps.objective import objective_names
        from seglab.sweeps.trial_pruning import PRUNED_ATTR, build_pruner

        from .space import build_sampler, override_value, parse_space, study_directions

        s = self.settings
        names = objective_names(self.config.get("optimized_metric"))
        directions = study_directions(names, s["direction"], s["directions"])
        space, fixed = parse_space(dict(s["params"] or {}), arguments)
        sampler = build_sampler(
            s["sampler"], s["seed"], s["n_startup_trials"], space, objectives=len(names)
        )
        pruner = build_pruner(s["pruner"], s["pruner_startup_trials"], s["pruner_warmup_epochs"])
        if len(names) > 1 and s["pruner"] != "none":
            raise SweepError(
                f"hydra.sweeper.pruner={s['pruner']} cannot prune a search of "
                f"{len(names)} metrics (Optuna prunes single-objective studies only); "
                "use hydra.sweeper.pruner=none"
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
                directions=directions,
                load_if_exists=True,
            )
        except Exception as error:
            message = str(error).splitlines()[0] if str(error) else type(error).__name__
            raise SweepError(
                f"hydra.sweeper.storage={storage} cannot be opened: {message}"
            ) from None
        # a resumed study keeps the directions it was created with
        stored = [direction.name.lower() for direction in study.directions]
        if stored != directions:
            raise SweepError(
                f"study {study.study_name} in {storage} was created to "
                f"{', '.join(stored)} and this search would {', '.join(directions)} "
                f"({', '.join(names)}); name another hydra.sweeper.study_name"
            )
        with warnings.catch_warnings():  # experimental in Optuna, read by optuna-dashboard
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names(names)
        log.info(
            "study %s in %s: sampler %s, pruner %s, %s %d trials",
            study.study_name,
            storage,
            s["sampler"],
            s["pruner"],
            ", ".join(f"{d} {name}" for d, name in zip(directions, names, strict=True)),
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
        values = [float(v) for v in value] if isinstance(value, list | tuple) else [float(value)]
    except (TypeError, ValueError):
        values = []
    if len(values) != len(study.directions):
        log.warning(
            "trial %d failed: it returned %r, not %d number(s)",
            trial.number,
            value,
            len(study.directions),
        )
        study.tell(trial, state=TrialState.FAIL)
        return
    study.tell(trial, values)


def _write_results(study: Any, sweep_dir: Path) -> None:
    """``optimization_results.yaml``: the count of trials by state, and the best trial, or
    for several metrics the Pareto front (the completed trials no other one beats in every
    metric), which is printed too."""
    from optuna.trial import TrialState

    states = [trial.state for trial in study.get_trials(deepcopy=False)]
    results: dict[str, Any] = {
        "name": "optuna",
        "study_name": study.study_name,
        "trials": {state.name: states.count(state) for state in TrialState if state in states},
    }
    names = study.metric_names or [f"value_{i}" for i in range(len(study.directions))]
    if not study.best_trials:
        log.warning("no trial of study %s has completed", study.study_name)
    elif len(study.directions) > 1:
        front = sorted(study.best_trials, key=lambda trial: trial.number)
        results |= {
            "metrics": names,
            "directions": [direction.name.lower() for direction in study.directions],
            "pareto_front": [
                {
                    "trial": trial.number,
                    "params": trial.params,
                    "values": dict(zip(names, trial.values, strict=True)),
                }
                for trial in front
            ],
        }
        log.info("Pareto front of %d trials:\n%s", len(front), pareto_table(front, names))
    else:
        best = study.best_trial
        results |= {"best_trial": best.number, "best_params": best.params, "best_value": best.value}
        log.info("best trial %d: %s = %s", best.number, best.params, best.value)
    sweep_dir.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(OmegaConf.create(results), sweep_dir / "optimization_results.yaml")


def pareto_table(trials: list[Any], names: list[str]) -> str:
    """One row a trial: its number, searched values and metrics, in aligned columns."""
    from seglab.visualization.tables import text_table

    from .space import override_value

    keys = sorted({key for trial in trials for key in trial.params})
    header = ["trial", *keys, *names]
    rows = [
        [
            str(trial.number),
            *(override_value(trial.params[k]) if k in trial.params else "" for k in keys),
            *(f"{value:.4g}" for value in trial.values),
        ]
        for trial in trials
    ]
    return text_table(header, rows, ">" + "<" * len(keys) + ">" * len(names))
