"""What ``seglab-export`` does: a checkpoint's network as a file that runs without seglab,
checked against PyTorch at two input sizes.

ONNX goes through ``torch.onnx.export(dynamo=True)``: torch.export traces the Segmenter with
symbolic batch, height and width, so its pad-to-stride and crop-back stay computed from the
input size. TorchScript goes through ``torch.jit.trace``, which records size arithmetic as
graph operations too; ``torch.jit.script`` cannot compile the decoders' Python. A trace can
still bake in a value that depends on the sample, so every export is run at a second size (not
a multiple of the stride, with another batch size) and compared with PyTorch before it is kept.
An ONNX file carries its run's config and data settings (seglab/inference/onnx_model.py), so that
``seglab-eval model_path=...`` scores it like a checkpoint; ``quantize=int8`` turns the checked
float file into an INT8 one (seglab/compression/quantize.py).
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from seglab.atomic import atomic_path
from seglab.compression.quantize import calibration, quantize_int8
from seglab.config.spec import resolve_spec
from seglab.engine.checkpoints import CHECKPOINT_KEY
from seglab.errors import SeglabError
from seglab.inference.onnx_model import (
    INPUT_NAME,
    OUTPUT_NAME,
    metadata,
    require_onnxruntime,
    write_metadata,
)
from seglab.quiet import quiet_torchscript
from seglab.workflows.build import build_datamodule, trained_model
from seglab.workflows.mounting import command_checkpoint

FORMATS = ("onnx", "torchscript")
Runner = Callable[[torch.Tensor], torch.Tensor]


def _onnx(
    model: torch.nn.Module, sample: torch.Tensor, path: Path, opset: int, properties: dict[str, str]
) -> Runner:
    require_onnxruntime("format=onnx")
    dynamic = torch.export.Dim.DYNAMIC
    # N, H and W symbolic (the channels are the encoder's); forward's argument is named x
    shapes = {"x": {0: dynamic, 2: dynamic, 3: dynamic}}
    torch.onnx.export(
        model,
        (sample,),
        str(path),
        dynamo=True,
        dynamic_shapes=shapes,
        input_names=[INPUT_NAME],
        output_names=[OUTPUT_NAME],
        opset_version=opset,
        external_data=False,  # one self-contained file (ONNX's protobuf limit is 2 GB)
        verbose=False,
    )
    write_metadata(path, properties)
    return _onnx_runner(path, sample.device)


def _onnx_runner(path: Path, device: torch.device) -> Runner:
    import onnxruntime

    providers = ["CPUExecutionProvider"]
    if device.type == "cuda":
        providers.insert(0, "CUDAExecutionProvider")
    session = onnxruntime.InferenceSession(str(path), providers=providers)

    def run(image: torch.Tensor) -> torch.Tensor:
        (logits,) = session.run([OUTPUT_NAME], {INPUT_NAME: image.cpu().numpy()})
        return torch.from_numpy(logits)

    return run


def _torchscript(model: torch.nn.Module, sample: torch.Tensor, path: Path) -> Runner:
    # A trace records a comparison of sizes as its sample's outcome and warns: here those are
    # fixed by the architecture (does a decoder upsample?), and the check at a second size that
    # follows would show one that is not.
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        quiet_torchscript()
        traced = torch.jit.trace(model, sample)
        traced.save(str(path))
        loaded = torch.jit.load(str(path), map_location=sample.device)

    def run(image: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return loaded(image).cpu()

    return run


def _check_options(cfg: DictConfig) -> tuple[Path, list[tuple[int, int]]]:
    """The output path and the check sizes, or a SeglabError naming the key to change."""
    for key in ("ckpt_path", "output"):
        if OmegaConf.is_missing(cfg, key):
            raise SeglabError(
                f"{key} is required: seglab-export ckpt_path=<run>/checkpoints/best.ckpt "
                "output=model.onnx"
            )
    if cfg.format not in FORMATS:
        raise SeglabError(f"format={cfg.format} is not one of: {', '.join(FORMATS)}")
    output = Path(cfg.output).expanduser()
    if output.exists() and not cfg.overwrite:
        raise SeglabError(f"output={output} already exists; remove it or add overwrite=true")
    if not output.parent.is_dir():
        raise SeglabError(f"output={output}: directory {output.parent} does not exist")
    sizes = [tuple(size) for size in cfg.check_sizes]
    if len(sizes) < 2 or any(len(s) != 2 or min(s) < 1 for s in sizes):
        raise SeglabError(
            f"check_sizes={OmegaConf.to_container(cfg.check_sizes)} must list at least two "
            "[height, width] pairs of positive sizes, e.g. [[64, 96], [97, 131]]"
        )
    if cfg.device == "cuda" and not torch.cuda.is_available():
        raise SeglabError("device=cuda but no CUDA device is available; use device=cpu")
    return output, [(int(h), int(w)) for h, w in sizes]


def largest_differences(
    model: torch.nn.Module, run: Runner, shapes: Sequence[tuple[int, int, int, int]], device: str
) -> list[float]:
    """Largest absolute difference between ``run``'s logits and the model's, per input shape."""
    generator = torch.Generator().manual_seed(0)
    differences = []
    for shape in shapes:
        image = torch.randn(shape, generator=generator).to(device)
        with torch.no_grad():
            expected = model(image).cpu()
        actual = run(image)
        if actual.shape != expected.shape:
            raise SeglabError(
                f"the exported model returns logits shaped {tuple(actual.shape)} for an input "
                f"shaped {shape}, PyTorch {tuple(expected.shape)}: a size was fixed at export"
            )
        differences.append(float((actual - expected).abs().max()))
    return differences


def export(cfg: DictConfig) -> list[tuple[tuple[int, int, int, int], float]]:
    """Write the exported model to ``cfg.output``; returns each check shape and its largest
    absolute difference from PyTorch. The file is kept only if every difference is within
    ``cfg.tolerance`` (else SystemExit 1), so a file at ``output`` always matches PyTorch.
    """
    output, sizes = _check_options(cfg)
    checkpoint = command_checkpoint(cfg)
    spec = resolve_spec(cfg)
    calibrating = calibration(cfg, lambda: build_datamodule(spec))
    model = trained_model(spec, checkpoint).to(cfg.device)
    channels = model.in_channels or OmegaConf.select(cfg, "data.in_channels", default=3)
    # a batch of 2 at export and 1 afterwards: neither batch size can be taken as a constant
    shapes = [(2 if i == 0 else 1, channels, h, w) for i, (h, w) in enumerate(sizes)]
    sample = torch.zeros(shapes[0], device=cfg.device)
    # written beside the output and moved there once checked: no half-written or unchecked file
    with atomic_path(output) as partial_path:
        try:
            if cfg.format == "onnx":
                properties = metadata(_run_config(cfg, checkpoint))
                run = _onnx(model, sample, partial_path, int(cfg.opset), properties)
            else:
                run = _torchscript(model, sample, partial_path)
        except (SeglabError, SystemExit):
            raise
        except Exception as error:
            raise SeglabError(_export_failure(model, cfg.format, error)) from error
        differences = largest_differences(model, run, shapes, cfg.device)
        results = list(zip(shapes, differences, strict=True))
        for shape, difference in results:
            print(
                f"input {'x'.join(map(str, shape))}: largest |logits - PyTorch's| {difference:.3g}"
            )
        worst = max(differences)
        if worst > cfg.tolerance:
            print(
                f"seglab-export: error: the exported model differs from PyTorch by up to "
                f"{worst:.3g}, more than tolerance={cfg.tolerance}; {output} was not written",
                file=sys.stderr,
            )
            sys.exit(1)
        if calibrating is not None:
            quantize_int8(partial_path, partial_path, calibrating)
            write_metadata(partial_path, properties)
            _report_int8(model, _onnx_runner(partial_path, torch.device(cfg.device)), shapes, cfg)
    return results


def _run_config(cfg: DictConfig, checkpoint: dict[str, Any]) -> dict[str, Any]:
    """The run keys of ``cfg`` (those the checkpoint's config holds), resolved: the run's config
    with the export's overrides, without the export's own options."""
    resolved = OmegaConf.to_container(cfg, resolve=True)
    return {key: resolved[key] for key in checkpoint[CHECKPOINT_KEY]["config"] if key in resolved}


def _report_int8(
    model: torch.nn.Module,
    run: Runner,
    shapes: Sequence[tuple[int, int, int, int]],
    cfg: DictConfig,
) -> None:
    """Run the INT8 file at the check shapes (a size fixed at quantization fails here) and
    print how far its logits are from PyTorch's, which quantization moves by design."""
    differences = largest_differences(model, run, shapes, cfg.device)
    for shape, difference in zip(shapes, differences, strict=True):
        print(
            f"input {'x'.join(map(str, shape))}: INT8 largest |logits - PyTorch's| "
            f"{difference:.3g} (not held to tolerance; score it with seglab-eval model_path=)"
        )


def _export_failure(model: torch.nn.Module, kind: str, error: Exception) -> str:
    """Which parts the failed model was made of, for an error the user can act on."""
    parts = ", ".join(
        f"{name}={type(getattr(model, name)).__name__}"
        for name in ("encoder", "attention", "decoder")
        if hasattr(model, name)
    )
    first_line = (str(error).strip().splitlines() or [""])[0]
    return (
        f"format={kind} cannot export this model ({parts}): {type(error).__name__}: "
        f"{first_line}; try the other format, or another encoder/decoder/attention"
    )
