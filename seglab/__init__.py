"""seglab: config-driven experiments for semantic image segmentation."""

# registers the resolvers the configs use, whichever entry point is imported first
from seglab import runs as _runs  # noqa: F401

__version__ = "0.1.0"
