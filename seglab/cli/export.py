"""``seglab-export ckpt_path=<file> [format=onnx|torchscript] [output=...]``: a trained network
as a file that runs without seglab, checked against the network it came from
(`seglab.workflows.export`)."""

from __future__ import annotations

from pathlib import Path

import hydra
from omegaconf import DictConfig

from seglab.errors import reported
from seglab.workflows.export import export
from seglab.workflows.mounting import config_dir, on_checkpoint

PROG = "seglab-export"


@hydra.main(config_path=str(config_dir()), config_name="export", version_base="1.3")
def _main(cfg: DictConfig) -> None:
    with reported(PROG):
        export(cfg)
    output = Path(cfg.output).expanduser()
    print(f"{cfg.format} model written to {output}")
    if cfg.format == "onnx":
        print(f"next: seglab-eval model_path={output}")
        print(f"      seglab-predict model_path={output} input=<images>")
    else:
        print(f"next: torch.jit.load('{output}') runs it without seglab")


def main() -> None:
    on_checkpoint(PROG, _main, "export")


if __name__ == "__main__":
    main()
