"""seglab's Hydra sweeper: an Optuna search driven through Optuna's ask-and-tell API.

Hydra finds it by scanning the ``hydra_plugins`` namespace package; ``config`` registers it as
``hydra/sweeper=seglab_optuna``.
"""
