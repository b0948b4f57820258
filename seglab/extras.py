"""Optional dependencies, each imported only where its feature runs.

A base install (``pip install seglab``) imports every module of seglab; a feature whose extra
is missing says, in one line, which extra of pyproject.toml installs it. Kept free of the
training stack, like `seglab.errors`.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from seglab.errors import SeglabError

#: The extra of pyproject.toml that installs each optional top-level module seglab imports.
EXTRAS = {
    "scipy": "sparse",
    "tifffile": "tiff",
    "timm": "timm",
    "optuna": "sweep",
    "onnx": "export",
    "onnxscript": "export",
    "onnxruntime": "export",
    "mlflow": "mlflow",
    "torch_pruning": "prune",
    "pycocotools": "coco",
    "hydra_plugins.hydra_joblib_launcher": "sweep",
    "hydra_plugins.hydra_submitit_launcher": "sweep",
}
#: The Hydra plugin behind each launcher config: seglab's own (conf/hydra/launcher/) and the
#: plugins' names for themselves.
LAUNCHERS = {
    "parallel": "hydra_plugins.hydra_joblib_launcher",
    "joblib": "hydra_plugins.hydra_joblib_launcher",
    "slurm": "hydra_plugins.hydra_submitit_launcher",
    "submitit_slurm": "hydra_plugins.hydra_submitit_launcher",
    "submitit_local": "hydra_plugins.hydra_submitit_launcher",
}


class MissingExtraError(SeglabError, ImportError):
    """An optional dependency a feature needs is not installed (an ImportError too, so that
    code asking "can this be imported?" reads it as such)."""


def install_command(extra: str) -> str:
    """The command that installs ``extra``, quoted for any shell."""
    return f"pip install 'seglab[{extra}]'"


def _within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def require(module: str, why: str) -> ModuleType:
    """Import ``module`` (a module of `EXTRAS` or one of its submodules) for the feature
    ``why`` (the setting that asks for it, e.g. ``data.few_labels.sparse_labels=points``).

    Raises:
        MissingExtraError: ``<why> needs <module>: pip install 'seglab[<extra>]'``; when the
            module is there but one of its own dependencies is not, the import's message too.
    """
    top = next(package for package in EXTRAS if _within(module, package))
    extra = EXTRAS[top]
    try:
        return importlib.import_module(module)
    except ImportError as error:
        broken = "" if _within(error.name or "", top) else f" ({type(error).__name__}: {error})"
        raise MissingExtraError(f"{why} needs {top}{broken}: {install_command(extra)}") from None


def require_launcher(choice: str) -> None:
    """Refuse ``hydra/launcher=<choice>`` whose Hydra plugin is not installed, in one line
    rather than Hydra's report of a config it cannot load."""
    module = LAUNCHERS.get(choice)
    if module is not None:
        require(module, f"hydra/launcher={choice}")
