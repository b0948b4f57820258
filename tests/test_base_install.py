"""A base install (``pip install seglab``, no extras) imports every module, says in one line
which extra a feature needs, and prints no warning line (tests/base_install.py builds it)."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest
from base_install import REPO, base_closure, base_site, run_base

EXTRAS = (
    "scipy",
    "optuna",
    "timm",
    "onnx",
    "onnxruntime",
    "mlflow",
    "torch_pruning",
    "pycocotools",
    "tifffile",
)
IMPORT_ALL = """
import importlib, pkgutil, sys, warnings
warnings.simplefilter("error")
import seglab, hydra_plugins.seglab_optuna_sweeper as plugin
names = []
for package in (seglab, plugin):
    names.append(package.__name__)
    names += [i.name for i in pkgutil.walk_packages(package.__path__, package.__name__ + ".")]
for name in names:
    importlib.import_module(name)
extras = [m for m in {extras!r} if m in sys.modules]
print(f"imported {{len(names)}} modules; extras imported: {{extras}}")
"""
#: A few tiny scenes: a base install's commands end to end in seconds.
TINY = [
    "data.num_train=32",
    "data.num_val=8",
    "data.num_test=8",
    "trainer.max_epochs=1",
    "trainer.log_every_n_steps=1",  # else Lightning warns that 2 batches log nothing
]


def _trouble_lines():
    spec = importlib.util.spec_from_file_location(
        "check_readme_command", REPO / "scripts" / "checks" / "check_readme_command.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.trouble_lines


trouble_lines = _trouble_lines()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return base_site(tmp_path_factory.mktemp("base-site"))


def test_the_base_closure_leaves_the_extras_out() -> None:
    closure = base_closure()
    assert {"torch", "pytorch-lightning", "hydra-core", "torchmetrics"} <= closure
    extras = {"scipy", "optuna", "timm", "onnx", "mlflow", "torch-pruning", "pycocotools"}
    assert not extras & closure


def test_warning_and_traceback_lines_are_found() -> None:
    output = (
        "Epoch 0: 100%|####| 4/4\r/x/plugins.py:227: UserWarning: \n"
        "[2026-12-07][seglab.workflows.training][WARNING] - few labels\n"
        "Traceback (most recent call last):\n"
        "/x/fit_loop.py:321: The number of training batches (2) is smaller than ...\n"
        "GPU available: False, used: False\n"
    )
    assert len(trouble_lines(output)) == 4


@pytest.mark.slow  # starts Python and imports torch, Lightning and every seglab module
def test_every_module_imports_on_a_base_install(site: Path, tmp_path: Path) -> None:
    code, out = run_base(site, ["-c", IMPORT_ALL.format(extras=EXTRAS)], cwd=tmp_path)
    assert code == 0, out[-3000:]
    assert "extras imported: []" in out, out


def _sections(out: str) -> list[tuple[str, int, str]]:
    """(command, exit code, output) of each command base_commands.py ran."""
    sections: list[tuple[str, int, str]] = []
    command, text = "", []
    for line in out.splitlines(keepends=True):
        if line.startswith("=== exit "):
            sections.append((command, int(line.split()[-1]), "".join(text)))
        elif line.startswith("=== "):
            command, text = line[4:].rstrip("\n"), []
        else:
            text.append(line)
    return sections


#: what a user of a base install types, and the extra each needs
NEEDS_AN_EXTRA = [
    ("seglab-train data.few_labels.sparse_labels=points", "sparse"),
    ("seglab-train -m hparams_search=synthetic_optuna hydra.sweeper.n_trials=1", "sweep"),
    ("seglab-train -m hydra/launcher=parallel optimizer.lr=1e-3,1e-2", "sweep"),
    ("seglab-train model/encoder=timm", "timm"),
    ("seglab-export ckpt_path={run}/checkpoints/best.ckpt output=m.onnx", "export"),
    # any existing file: the extra is asked for before the export is read
    ("seglab-data import coco {run}/.hydra/config.yaml imported", "coco"),
]


@pytest.mark.slow  # trains a tiny model, evaluates and compares it, and asks for each extra
def test_a_base_install_prints_no_warning_and_names_each_missing_extra(
    site: Path, tmp_path: Path
) -> None:
    tiny = " ".join(TINY)
    commands = [
        f"seglab-train {tiny}",
        "seglab-eval ckpt_path={run}/checkpoints/best.ckpt",
        "seglab-compare outputs/train",
        *(
            f"{line} {tiny}" if line.startswith("seglab-train") else line
            for line, _ in NEEDS_AN_EXTRA
        ),
    ]
    code, out = run_base(site, [str(REPO / "tests" / "base_commands.py"), *commands], cwd=tmp_path)
    assert code == 0, out[-3000:]
    sections = _sections(out)
    assert [line for line, _, _ in sections] == commands, out[-3000:]
    for line, code, text in sections[:3]:
        assert code == 0, f"{line}: {text[-3000:]}"
        assert trouble_lines(text) == [], f"{line}: {trouble_lines(text)}"
    assert "mIoU" in sections[2][2]
    for (line, code, text), (_, extra) in zip(sections[3:], NEEDS_AN_EXTRA, strict=True):
        assert code == 2, f"{line}: {text[-3000:]}"
        assert "Traceback" not in text, f"{line}: {text[-3000:]}"
        last = text.strip().splitlines()[-1]
        assert re.match(r"seglab-\w+: error: ", last), last
        assert f"pip install 'seglab[{extra}]'" in last, last
