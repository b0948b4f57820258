"""INT8 ONNX files: ONNX Runtime's static quantization of an exported float network
(``seglab-export format=onnx quantize=int8``).

Weights are quantized per output channel and activations per tensor, as QuantizeLinear /
DequantizeLinear pairs around each operator (QDQ format, signed 8 bits for both, which ONNX
Runtime names its first choice), after its pre-processing (shape inference and graph
optimisation). Activation ranges come from calibration on images of the run's own train split,
read through its data config with the evaluation transforms (no random crops or flips), so the
network is calibrated on what it sees when scored. The images are spread evenly over the split,
which in a dataset of video sequences (CamVid) spans its scenes rather than its first one.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from omegaconf import DictConfig
from torch.utils.data import Dataset

from seglab.data import DatasetError, SegmentationDataModule
from seglab.errors import SeglabError
from seglab.inference.onnx_model import INPUT_NAME, require_onnxruntime

#: Values of ``quantize``: none (a float file) or INT8.
QUANTIZATIONS = (None, "int8")
#: How activation ranges are taken from the calibration images (ONNX Runtime's calibrators):
#: minmax their extremes, entropy the range that keeps the histogram's information (KL),
#: percentile the 99.999th percentile of magnitudes, which ignores rare outliers.
METHODS = {"minmax": "MinMax", "entropy": "Entropy", "percentile": "Percentile"}


@dataclass(frozen=True)
class Calibration:
    """The images (indices into ``dataset``) and method that calibrate an INT8 file."""

    dataset: Dataset
    indices: list[int]
    method: str

    def inputs(self) -> Iterator[dict[str, np.ndarray]]:
        """One ``{"image": (1, C, H, W) float32}`` input per calibration image, read lazily."""
        for index in self.indices:
            image = self.dataset[index][0]
            yield {INPUT_NAME: image[None].float().numpy()}


def calibration(
    cfg: DictConfig, datamodule: Callable[[], SegmentationDataModule]
) -> Calibration | None:
    """The calibration of ``cfg.quantize=int8`` (None for a float export), with every option
    checked and the train split built, before anything is exported; ``datamodule`` builds the
    run's data once the options passed."""
    quantize = cfg.get("quantize")
    if quantize not in QUANTIZATIONS:
        raise SeglabError(f"quantize={quantize} is not one of: int8 (or null for a float file)")
    if quantize is None:
        return None
    if cfg.format != "onnx":
        raise SeglabError(
            f"quantize={quantize} needs format=onnx: ONNX Runtime quantizes the ONNX file, "
            f"format={cfg.format} is exported in float only"
        )
    require_onnxruntime(f"quantize={quantize}")
    options = cfg.calibration
    if options.method not in METHODS:
        raise SeglabError(
            f"calibration.method={options.method} is not one of: {', '.join(METHODS)}"
        )
    count = int(options.num_images)
    if count < 1:
        raise SeglabError(f"calibration.num_images={count} must be at least 1")
    data = datamodule()
    missing = data.split_unavailable("train")
    if missing is not None:
        raise SeglabError(f"cannot calibrate on the train split: {missing}")
    try:
        dataset = data.evaluation_dataset("train")
    except DatasetError as error:
        raise SeglabError(str(error)) from None
    size = len(dataset)
    if size == 0:
        raise SeglabError(
            "the train split of data holds no images to calibrate quantize=int8 on; point "
            "data.root (or the data config) at the run's data"
        )
    indices = sorted({int(i) for i in np.linspace(0, size - 1, min(count, size)).round()})
    return Calibration(dataset, indices, str(options.method))


def quantize_int8(float_path: Path, output: Path, calibration: Calibration) -> None:
    """Write the INT8 network of the float ONNX file ``float_path`` to ``output``."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.inputs = calibration.inputs()

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.inputs, None)

    with tempfile.TemporaryDirectory(prefix="seglab-quantize-") as folder:
        prepared = Path(folder) / "prepared.onnx"
        # ONNX's shape inference only: ONNX Runtime's symbolic one cannot bound the Segmenter's
        # pad-to-stride sizes (a batch, height and width of any value) and gives up, and ORT's
        # guide names it the pass for transformers, ONNX's for other networks
        quant_pre_process(str(float_path), str(prepared), skip_symbolic_shape=True)
        quantize_static(
            str(prepared),
            str(output),
            Reader(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=getattr(CalibrationMethod, METHODS[calibration.method]),
        )
