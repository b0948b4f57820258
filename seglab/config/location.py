"""Where seglab's own configs are: read by the commands, by the checks and by the upgrade of
configs an earlier seglab saved (which completes them with today's shipped defaults)."""

from __future__ import annotations

from pathlib import Path

from seglab.errors import SeglabError


def config_dir() -> Path:
    """``conf/`` shipped inside an installed wheel, else the one beside the package source."""
    package = Path(__file__).resolve().parents[1]
    for candidate in (package / "conf", package.parent / "conf"):
        if (candidate / "train.yaml").is_file():
            return candidate
    raise SeglabError(f"no conf/train.yaml found in {package} or {package.parent}")
