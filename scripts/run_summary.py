"""Print a finished run's headline numbers, read back from its TensorBoard event files.

    python scripts/run_summary.py outputs/train/<run>

Used to check a run against a target (e.g. the default experiment's val/mIoU) without trusting
anything but what TensorBoard itself reads.
"""

from __future__ import annotations

import argparse
import json

from seglab.runs.directories import read_scalars


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir")
    args = parser.parse_args()
    scalars = read_scalars(args.run_dir)
    val = scalars.get("val/mIoU", [])
    summary = {
        "epochs_validated": len(val),
        "best_val_mIoU": max((v for _, v in val), default=None),
        "last_val_mIoU": val[-1][1] if val else None,
        "best_val_mDice": max((v for _, v in scalars.get("val/mDice", [])), default=None),
        "test_mIoU": scalars["test/mIoU"][-1][1] if "test/mIoU" in scalars else None,
        "val_mIoU_per_epoch": [round(v, 4) for _, v in val],
    }
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
