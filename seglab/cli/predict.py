"""``seglab-predict ckpt_path=<file> input=<file|dir|glob> output=<dir>``: masks for new images
(``model_path=<file>.onnx`` instead of ``ckpt_path`` runs an exported file in ONNX Runtime).

Every image gets ``<stem>.png``, a palette PNG of class indices coloured like the dataset
(``mode`` binary: 255 on foreground, 0 elsewhere; multilabel: one such mask per class,
``<class>/<stem>.png``), and on request ``<stem>_overlay.jpg`` and ``<stem>_probs.npy``. With
``pseudo_labels=true`` the mask is instead the dataset's own mask file, void below
``confidence`` (`seglab.inference.pseudo_labels`), so the output folder can be trained on.
An unreadable image is skipped and named at the end (exit code 1) so that one bad file does
not cost the others.
"""

from __future__ import annotations

import sys

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from seglab.errors import reported
from seglab.workflows.mounting import config_dir, on_checkpoint
from seglab.workflows.prediction import predict

PROG = "seglab-predict"


@hydra.main(config_path=str(config_dir()), config_name="predict", version_base="1.3")
def _main(cfg: DictConfig) -> None:
    with reported(PROG, ValueError):
        failed = predict(cfg)
    if failed:
        print(f"{PROG}: {len(failed)} file(s) could not be read:", file=sys.stderr)
        for path, reason in failed:
            print(f"  {path}: {reason}", file=sys.stderr)
        sys.exit(1)
    print(f"masks written to {cfg.output}")
    print(f"the command's record (config, log) is in {HydraConfig.get().runtime.output_dir}")


def main() -> None:
    on_checkpoint(PROG, _main, "predict")


if __name__ == "__main__":
    main()
