"""seglab: config-driven experiments for semantic image segmentation."""

__version__ = "0.1.0"
