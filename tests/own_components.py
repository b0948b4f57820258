"""A user's own component, importable as ``own_components`` when tests/ is on the path: what
``trusted_targets`` is for."""

from seglab.models import ConvEncoder


class OwnEncoder(ConvEncoder):
    """An encoder of the user's own package (seglab's ConvEncoder under another name)."""
