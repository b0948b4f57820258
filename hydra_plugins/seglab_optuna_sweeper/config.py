"""The settings of ``hydra/sweeper=seglab_optuna``, registered in Hydra's config store.

Kept free of Optuna: Hydra imports every plugin module at start-up, for single runs too. No
``from __future__ import annotations``: Hydra executes the module without registering it in
``sys.modules``, where ``dataclass`` would look string annotations up.
"""

from dataclasses import dataclass, field

from hydra.core.config_store import ConfigStore


@dataclass
class SeglabOptunaSweeperConf:
    _target_: str = "hydra_plugins.seglab_optuna_sweeper.sweeper.SeglabOptunaSweeper"
    # tpe, random, grid (choice and range values only) or cmaes (needs the cmaes package)
    sampler: str = "tpe"
    seed: int | None = None
    # trials sampled at random before TPE or CMA-ES start modelling the results
    n_startup_trials: int = 10
    # median, hyperband or none: stops a trial whose per-validation value is unpromising
    pruner: str = "none"
    # the median pruner prunes nothing before this many trials have finished ...
    pruner_startup_trials: int = 5
    # ... nor in a trial's first epochs
    pruner_warmup_epochs: int = 0
    # of a single optimized_metric: maximize or minimize
    direction: str = "maximize"
    # of each metric of a list optimized_metric (a multi-objective search), in its order, e.g.
    # [maximize, minimize]; replaces direction when set
    directions: list[str] | None = None
    study_name: str = "seglab"
    # any SQLAlchemy URL; trials read it to report to the study, so it cannot be in memory
    storage: str = "sqlite:///${hydra.sweep.dir}/study.db"
    n_trials: int = 20
    # trials asked at once and handed to the launcher together
    n_jobs: int = 1
    # the search space, in Hydra's override grammar
    params: dict[str, str] = field(default_factory=dict)
    # set by the sweeper in each job's overrides: the Optuna trial the job runs
    trial: int | None = None


ConfigStore.instance().store(
    group="hydra/sweeper", name="seglab_optuna", node=SeglabOptunaSweeperConf, provider="seglab"
)
