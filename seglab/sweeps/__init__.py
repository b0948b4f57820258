"""Hyperparameter sweeps: the objective, trial pruning, the HPARAMS summary, MLflow."""
