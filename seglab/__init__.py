"""seglab: config-driven experiments for semantic image segmentation."""

from typing import Any

from seglab.runs.resolvers import register

# the resolvers the configs use, whichever entry point is imported first
register()

__version__ = "0.1.0"
__all__ = ["load"]


def __getattr__(name: str) -> Any:
    """``seglab.load`` (``seglab.workflows.prediction.load``), imported on first use: it pulls
    in the model and training stack, which a plain ``import seglab`` should not pay for."""
    if name == "load":
        from seglab.workflows.prediction import load

        return load
    raise AttributeError(f"module 'seglab' has no attribute {name!r}")
