"""seglab-compare on run directories built by hand: Hydra configs and TensorBoard event files."""

from __future__ import annotations

import csv
import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf
from PIL import Image
from tensorboard.plugins.hparams.summary_v2 import hparams_pb
from torch.utils.tensorboard import SummaryWriter

from seglab.cli.compare import main
from seglab.cli.train import main as train_main
from seglab.sweeps.hparams import write_sweep_experiment

# (optimizer.lr, model.decoder) -> val/mIoU, val/mDice, val/loss at epochs 0, 1, 2
GRID = {
    ("0.001", "unet"): ([0.50, 0.70, 0.65], [0.60, 0.82, 0.78], [0.90, 0.45, 0.50]),
    ("0.001", "fpn"): ([0.40, 0.60, 0.62], [0.50, 0.71, 0.74], [0.95, 0.60, 0.58]),
    ("0.01", "unet"): ([0.55, 0.80, 0.78], [0.66, 0.88, 0.87], [0.80, 0.52, 0.40]),
    ("0.01", "fpn"): ([0.30, 0.35, 0.20], [0.41, 0.45, 0.33], [1.20, 1.10, 1.30]),
}
STEPS_PER_EPOCH = 10
START = 1_000_000.0


def write_config(run_dir: Path, lr: float, decoder: str) -> None:
    """Hydra's unresolved config.yaml and seglab's resolved copy, as a real run saves them."""
    config = {
        "seed": 42,
        "data": {"num_classes": 4, "classes": ["bg", "ellipse", "rectangle", "triangle"]},
        "model": {"decoder": decoder, "num_classes": "${data.num_classes}"},
        "optimizer": {"lr": lr, "weight_decay": 0.01},
        "trainer": {"max_epochs": 3, "default_root_dir": "${paths.output_dir}"},
        "callbacks": {"model_checkpoint": {"dirpath": "${paths.output_dir}/checkpoints"}},
        "paths": {"output_root": "outputs", "output_dir": "${hydra:runtime.output_dir}"},
    }
    hydra_dir = run_dir / ".hydra"
    hydra_dir.mkdir(parents=True)
    OmegaConf.save(OmegaConf.create(config), hydra_dir / "config.yaml")
    resolved = OmegaConf.create(config)
    resolved.paths.output_dir = str(run_dir.resolve())
    OmegaConf.save(resolved, hydra_dir / "config_resolved.yaml", resolve=True)


def write_events(
    run_dir: Path, scalars: dict[str, list[float]], start: float, epoch_tag: bool = True
) -> None:
    """One train/loss point mid-epoch and the val scalars at each epoch's end, 30 s apart."""
    writer = SummaryWriter(str(run_dir))
    epochs = max((len(values) for values in scalars.values()), default=0)
    for epoch in range(epochs):
        end = (epoch + 1) * STEPS_PER_EPOCH - 1
        writer.add_scalar("train/loss", 1.0 / (epoch + 1), end - 5, walltime=start + 30 * epoch)
        for tag, values in scalars.items():
            if epoch < len(values):
                writer.add_scalar(tag, values[epoch], end, walltime=start + 30 * epoch + 20)
        if epoch_tag:
            writer.add_scalar("epoch", epoch, end, walltime=start + 30 * epoch + 20)
    writer.close()


def job_name(lr: str, decoder: str) -> str:
    return f"optimizer.lr={lr},model.decoder={decoder}"


@pytest.fixture
def sweep(tmp_path: Path) -> Path:
    """A finished 2x2 multirun: outputs/train/multirun/<time>/<job name>/."""
    root = tmp_path / "outputs" / "train" / "multirun" / "2026-01-01_00-00-00-000000"
    for k, ((lr, decoder), (miou, dice, loss)) in enumerate(GRID.items()):
        run_dir = root / job_name(lr, decoder)
        write_config(run_dir, float(lr), decoder)
        scalars = {"val/mIoU": miou, "val/mDice": dice, "val/loss": loss}
        write_events(run_dir, scalars, START + 1000 * k)
    return root


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    main([str(arg) for arg in args])
    return capsys.readouterr().out


def read_csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_csv_has_one_row_per_run_sorted_by_best_metric(
    sweep: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = read_csv(run_cli(capsys, sweep, "--format", "csv"))
    assert list(rows[0]) == [
        "model.decoder",
        "optimizer.lr",
        "best val/mIoU",
        "best val/mDice",
        "final val/loss",
        "epochs",
        "wall time [s]",
        "run",
    ]
    # best val/mIoU by hand: 0.80 (0.01 unet) > 0.70 (0.001 unet) > 0.62 (0.001 fpn) > 0.35
    assert [(row["optimizer.lr"], row["model.decoder"]) for row in rows] == [
        ("0.01", "unet"),
        ("0.001", "unet"),
        ("0.001", "fpn"),
        ("0.01", "fpn"),
    ]
    assert [float(row["best val/mIoU"]) for row in rows] == pytest.approx([0.80, 0.70, 0.62, 0.35])
    assert [float(row["best val/mDice"]) for row in rows] == pytest.approx([0.88, 0.82, 0.74, 0.45])
    assert [float(row["final val/loss"]) for row in rows] == pytest.approx([0.40, 0.50, 0.58, 1.30])
    assert [row["epochs"] for row in rows] == ["3"] * 4
    # first event: train/loss at start, last: the val scalars at start + 30 * 2 + 20
    assert [float(row["wall time [s]"]) for row in rows] == [80.0] * 4
    assert [row["run"] for row in rows] == [
        job_name("0.01", "unet"),
        job_name("0.001", "unet"),
        job_name("0.001", "fpn"),
        job_name("0.01", "fpn"),
    ]


def test_wall_time_leaves_out_the_experiment_the_sweep_wrote_when_it_ended(
    sweep: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The sweep's HPARAMS experiment lands in its first job's directory, stamped when the
    sweep ended (now, years after START): it is no event of that job's training."""
    for k, (lr, decoder) in enumerate(GRID):
        run_dir = sweep / job_name(lr, decoder)
        writer = SummaryWriter(str(run_dir))
        session = hparams_pb({"optimizer.lr": float(lr)}, trial_id=run_dir.name)
        # within the job's span (the fixture starts job k at START + 1000 k)
        writer._get_file_writer().add_summary(session, walltime=START + 1000 * k + 40)
        writer.close()
    written = write_sweep_experiment(sweep)
    assert written is not None and written.parent == sorted(sweep.iterdir())[0]
    rows = read_csv(run_cli(capsys, sweep, "--format", "csv"))
    assert [float(row["wall time [s]"]) for row in rows] == [80.0] * 4


def test_a_pruned_run_is_marked_in_its_own_column(
    sweep: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Only a sweep with a pruned run (one whose directory holds pruned.yaml) gets the column."""
    (sweep / job_name("0.01", "fpn") / "pruned.yaml").write_text("trial: 3\nepoch: 1\n")
    rows = read_csv(run_cli(capsys, sweep, "--format", "csv"))
    assert list(rows[0])[-2:] == ["pruned", "run"]
    assert {row["run"]: row["pruned"] for row in rows} == {
        job_name("0.01", "unet"): "",
        job_name("0.001", "unet"): "",
        job_name("0.001", "fpn"): "",
        job_name("0.01", "fpn"): "after epoch 1",
    }
    (sweep / job_name("0.01", "fpn") / "pruned.yaml").unlink()
    assert "pruned" not in read_csv(run_cli(capsys, sweep, "--format", "csv"))[0]


def test_loss_metric_ranks_lowest_first_unless_mode_says_otherwise(
    sweep: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = read_csv(run_cli(capsys, sweep, "--metric", "val/loss", "--format", "csv"))
    # lowest val/loss of each run: 0.40, 0.45, 0.58, 1.10
    assert [float(row["best val/loss"]) for row in rows] == pytest.approx([0.40, 0.45, 0.58, 1.10])
    rows = read_csv(
        run_cli(capsys, sweep, "--metric", "val/loss", "--mode", "max", "--format", "csv")
    )
    # highest val/loss of each run: 1.30, 0.95, 0.90, 0.80
    assert [float(row["best val/loss"]) for row in rows] == pytest.approx([1.30, 0.95, 0.90, 0.80])
    assert rows[0]["run"] == job_name("0.01", "fpn")


def test_markdown_is_a_github_table(sweep: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lines = run_cli(capsys, sweep, "--format", "markdown").splitlines()
    assert len(lines) == 2 + 4
    assert lines[0].startswith("| model.decoder | optimizer.lr | best val/mIoU |")
    # the five result columns hold numbers: right-aligned
    assert lines[1] == "| " + " | ".join(["---"] * 2 + ["---:"] * 5 + ["---"]) + " |"
    for line in lines:
        assert line.startswith("| ") and line.endswith(" |")
        assert line.count(" | ") == 7
    assert lines[2].startswith("| unet | 0.01 | 0.8000 | 0.8800 | 0.4000 | 3 | 80.0 |")


def test_table_is_aligned(sweep: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lines = run_cli(capsys, sweep).splitlines()
    assert len(lines) == 1 + 4
    assert lines[0].split()[:2] == ["model.decoder", "optimizer.lr"]
    # every run name starts in the "run" column
    column = lines[0].index("run")
    assert [line[column:] for line in lines[1:]] == [
        job_name("0.01", "unet"),
        job_name("0.001", "unet"),
        job_name("0.001", "fpn"),
        job_name("0.01", "fpn"),
    ]


def test_unfinished_runs_are_listed_last_with_empty_results(
    sweep: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    crashed = sweep / job_name("0.1", "unet")
    write_config(crashed, 0.1, "unet")
    write_events(crashed, {"val/loss": [2.0]}, START)  # validated once, never logged val/mIoU
    empty = sweep / job_name("0.1", "fpn")
    write_config(empty, 0.1, "fpn")
    SummaryWriter(str(empty)).close()  # died before its first logged value
    rows = read_csv(run_cli(capsys, sweep, "--format", "csv"))
    assert len(rows) == 6
    assert {row["run"] for row in rows[4:]} == {crashed.name, empty.name}
    last = {row["run"]: row for row in rows[4:]}
    assert last[crashed.name]["best val/mIoU"] == ""
    assert last[crashed.name]["final val/loss"] == "2.0"
    assert last[crashed.name]["epochs"] == "1"
    assert last[empty.name]["epochs"] == "0"
    assert last[empty.name]["wall time [s]"] == ""


def test_only_values_that_differ_become_columns(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two single runs under outputs/, one of them only with Hydra's unresolved config.yaml."""
    outputs = tmp_path / "outputs"
    first = outputs / "train" / "2026-01-01_00-00-00-000001"
    second = outputs / "train" / "2026-01-01_00-00-05-000002"
    write_config(first, 0.001, "unet")
    write_config(second, 0.001, "fpn")
    (second / ".hydra" / "config_resolved.yaml").unlink()
    for run_dir in (first, second):
        write_events(run_dir, {"val/mIoU": [0.5]}, START)
    # an eval run holds a config but no event files: it is no training run
    (outputs / "eval" / "2026-01-02_00-00-00-000000" / ".hydra").mkdir(parents=True)
    OmegaConf.save(
        {"split": "val"}, outputs / "eval" / "2026-01-02_00-00-00-000000" / ".hydra" / "config.yaml"
    )
    rows = read_csv(run_cli(capsys, outputs, "--format", "csv"))
    # trainer.default_root_dir, model_checkpoint.dirpath and paths.* differ but say nothing
    assert list(rows[0])[:2] == ["model.decoder", "best val/mIoU"]
    assert sorted(row["run"] for row in rows) == [
        "train/2026-01-01_00-00-00-000001",
        "train/2026-01-01_00-00-05-000002",
    ]


def test_worker_counts_and_the_cache_folder_are_no_column(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two runs that differ in how fast they load data and in their learning rate: only the
    learning rate can explain a difference in their scores."""
    outputs = tmp_path / "outputs"
    for name, lr, workers in (("a", 0.001, 0), ("b", 0.01, 4)):
        run_dir = outputs / "train" / name
        write_config(run_dir, lr, "unet")
        resolved = run_dir / ".hydra" / "config_resolved.yaml"
        config = OmegaConf.load(resolved)
        config.data.loader = {"num_workers": workers, "persistent_workers": workers > 0}
        config.data.cache_dir = f"/cache/{name}"
        config.trainer.enable_progress_bar = workers > 0
        OmegaConf.save(config, resolved)
        write_events(run_dir, {"val/mIoU": [0.5]}, START)
    rows = read_csv(run_cli(capsys, outputs, "--format", "csv"))
    assert list(rows[0])[:2] == ["optimizer.lr", "best val/mIoU"]


def test_plot_writes_a_png(sweep: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "plots" / "miou.png"
    run_cli(capsys, sweep, "--plot", out)
    with Image.open(out) as image:
        assert image.format == "PNG"
        assert image.width > 100 and image.height > 100


def test_legend_names_a_swapped_group_by_its_class() -> None:
    from seglab.runs.curves import legend_label
    from seglab.runs.records import Run, differing_keys

    def run(name: str, config: dict[str, object]) -> Run:
        return Run(name=name, config=config, scalars={}, wall_time=None)

    unet = run("a", {"model.decoder._target_": "seglab.models.UNetDecoder", "optimizer.lr": 0.1})
    fpn = run(
        "b",
        {
            "model.decoder._target_": "seglab.models.FPNDecoder",
            "model.decoder.merge": "add",
            "optimizer.lr": 0.1,
        },
    )
    keys = differing_keys([unet, fpn])
    assert keys == ["model.decoder._target_", "model.decoder.merge"]
    assert legend_label(unet, keys) == "model.decoder=UNetDecoder"
    assert legend_label(fpn, keys) == "model.decoder=FPNDecoder"
    assert legend_label(unet, []) == "a"


def test_curves_use_epochs_where_logged_else_steps(tmp_path: Path) -> None:
    from seglab.runs.curves import curve, has_epochs
    from seglab.runs.records import read_run

    with_epochs, without = tmp_path / "a", tmp_path / "b"
    for run_dir, epoch_tag in ((with_epochs, True), (without, False)):
        write_config(run_dir, 0.001, "unet")
        write_events(run_dir, {"val/mIoU": [0.1, 0.2, 0.3]}, START, epoch_tag=epoch_tag)
    run = read_run(with_epochs, tmp_path)
    assert has_epochs(run, "val/mIoU")
    assert curve(run, "val/mIoU", by_epoch=True)[0] == [0.0, 1.0, 2.0]
    run = read_run(without, tmp_path)
    assert not has_epochs(run, "val/mIoU")
    xs, ys = curve(run, "val/mIoU", by_epoch=False)
    assert xs == [9.0, 19.0, 29.0]
    assert ys == pytest.approx([0.1, 0.2, 0.3])


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["{tmp}/nowhere"], "nowhere does not exist"),
        (["{tmp}"], "no run directory below"),
        (["{sweep}", "--metric", "val/nope"], "logged val/nope; choose --metric from: "),
    ],
)
def test_errors_are_one_line_and_exit_2(
    sweep: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    expected: str,
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    argv = [arg.format(tmp=empty, sweep=sweep) for arg in args]
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("seglab-compare: error: ") and err.count("\n") == 1
    assert expected in err


def test_metric_error_lists_logged_scalars(sweep: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main([str(sweep), "--metric", "val/nope"])
    assert "val/loss, val/mDice, val/mIoU" in capsys.readouterr().err


def test_console_script_exits_2(tmp_path: Path) -> None:
    script = Path(sys.executable).with_name("seglab-compare")
    result = subprocess.run(
        [str(script), str(tmp_path / "nowhere")], capture_output=True, text=True, check=False
    )
    assert result.returncode == 2
    assert "nowhere does not exist" in result.stderr


@pytest.mark.slow
def test_a_2x2_grid_names_its_jobs_and_compares_them(
    tmp_path: Path, cli, capsys: pytest.CaptureFixture[str]
) -> None:
    """The whole loop: seglab-train -m on the built-in data, then seglab-compare and TensorBoard."""
    from seglab.runs.directories import read_hparams, read_scalars

    tiny = [
        "data.image_size=32",
        "data.num_train=16",
        "data.num_val=8",
        "data.num_test=8",
        "data.loader.batch_size=8",
        "model.encoder.widths=[8,16]",
        "trainer.max_epochs=1",
        "trainer.enable_progress_bar=false",
        "trainer.enable_model_summary=false",
    ]
    code, _, err = cli(
        train_main,
        "-m",
        *tiny,
        "optimizer.lr=0.001,0.003",
        "optimizer.weight_decay=0,0.01",
        f"paths.output_root={tmp_path}",
        cwd=tmp_path,
    )
    assert code == 0, err[-3000:]
    (sweep_dir,) = (tmp_path / "train" / "multirun").iterdir()
    jobs = sorted(path.name for path in sweep_dir.iterdir() if path.is_dir())
    assert jobs == [
        f"lr={lr},weight_decay={wd}" for lr in ("0.001", "0.003") for wd in ("0", "0.01")
    ]
    main([str(sweep_dir), "--format", "csv"])
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert len(rows) == 4
    swept = {"optimizer.lr", "optimizer.weight_decay"}
    assert swept <= set(rows[0]) and not any(c.startswith(("data.", "model.")) for c in rows[0])
    assert sorted(row["run"] for row in rows) == jobs, "the TensorBoard run names"
    for job in jobs:
        params = read_hparams(sweep_dir / job)
        values = dict(item.split("=") for item in job.split(","))
        assert {key: float(params[key]) for key in swept} == {
            key: float(values[key.split(".")[-1]]) for key in swept
        }
        assert {"val/mIoU_best", "val/mDice_best", "val/loss"} <= set(read_scalars(sweep_dir / job))


def test_a_swapped_config_group_is_one_column(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A nested group (model/decoder) and a top-level one (method): the choices are the
    columns, not the values inside the groups."""
    runs = (
        ("unet", "UNetDecoder", "supervised", {}),
        ("fpn", "FPNDecoder", "fixmatch", {"threshold": 0.95}),
    )
    for decoder, target, method, options in runs:
        run_dir = tmp_path / decoder
        (run_dir / ".hydra").mkdir(parents=True)
        config = {
            "model": {"decoder": {"_target_": target}},
            "method": {"_target_": method, **options},
            "optimizer": {"lr": 0.1},
            "data": {"few_labels": {"labeled_fraction": 0.125 if options else 0.25}},
        }
        OmegaConf.save(config, run_dir / ".hydra" / "config.yaml")
        choices = {
            "model/decoder": decoder,
            "method": method,
            "optimizer": "adamw",
            "hydra/launcher": "basic",
        }
        OmegaConf.save({"hydra": {"runtime": {"choices": choices}}}, run_dir / ".hydra/hydra.yaml")
        with SummaryWriter(str(run_dir)) as writer:
            writer.add_scalar("val/mIoU", 0.5, 0, walltime=START)
    main([str(tmp_path), "--format", "csv"])
    header = next(csv.reader(io.StringIO(capsys.readouterr().out)))
    assert header[:3] == ["model/decoder", "method", "data.few_labels.labeled_fraction"]
    assert not any(c.startswith(("model.", "method.")) for c in header)


# (optimizer.lr) -> per fold: val/mIoU and val/loss at epochs 0, 1
FOLD_RUNS = {
    "0.001": [([0.50, 0.61], [0.9, 0.7]), ([0.40, 0.52], [1.0, 0.8]), ([0.70, 0.66], [0.6, 0.5])],
    "0.01": [([0.30, 0.45], [1.2, 1.1]), ([0.35, 0.41], [1.1, 1.0]), ([0.20, 0.38], [1.3, 1.2])],
}


def test_the_folds_of_a_cross_validation_are_one_row_with_mean_and_sample_std(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Runs that differ only in data.splits.fold are one row; a run without folds keeps its own."""
    root = tmp_path / "sweep"
    for lr, folds in FOLD_RUNS.items():
        for fold, (miou, loss) in enumerate(folds):
            run_dir = root / f"lr={lr},fold={fold}"
            config = {
                "data": {"splits": {"folds": 3, "fold": fold, "fold_seed": 0}},
                "optimizer": {"lr": float(lr)},
            }
            (run_dir / ".hydra").mkdir(parents=True)
            OmegaConf.save(OmegaConf.create(config), run_dir / ".hydra" / "config.yaml")
            write_events(run_dir, {"val/mIoU": miou, "val/loss": loss}, START + 100 * fold)
    single = root / "no folds"
    (single / ".hydra").mkdir(parents=True)
    splits = {"folds": None, "fold": None, "fold_seed": 0}
    config = {"data": {"splits": splits}, "optimizer": {"lr": 0.1}}
    OmegaConf.save(OmegaConf.create(config), single / ".hydra" / "config.yaml")
    write_events(single, {"val/mIoU": [0.55], "val/loss": [0.8]}, START)
    rows = read_csv(run_cli(capsys, str(root), "--format", "csv"))
    assert "data.splits.fold" not in rows[0] and "optimizer.lr" in rows[0]
    assert [row["optimizer.lr"] for row in rows] == ["0.001", "0.1", "0.01"], "by mean mIoU"
    for row in (rows[0], rows[2]):
        folds = FOLD_RUNS[row["optimizer.lr"]]
        best = [max(miou) for miou, _ in folds]
        final = [loss[-1] for _, loss in folds]
        assert row["folds"] == "3"
        assert float(row["best val/mIoU"]) == pytest.approx(np.mean(best))
        assert float(row["best val/mIoU std"]) == pytest.approx(np.std(best, ddof=1))
        assert float(row["final val/loss"]) == pytest.approx(np.mean(final))
        assert float(row["final val/loss std"]) == pytest.approx(np.std(final, ddof=1))
        assert row["epochs"] == "2.0"
        assert row["run"] == "; ".join(f"lr={row['optimizer.lr']},fold={k}" for k in range(3))
    assert rows[1]["folds"] == "1" and rows[1]["best val/mIoU std"] == ""
    assert float(rows[1]["best val/mIoU"]) == pytest.approx(0.55) and rows[1]["epochs"] == "1"
    table = run_cli(capsys, str(root))
    assert "best val/mIoU std" in table.splitlines()[0]


def test_one_run_is_followed_by_when_its_best_came_and_its_test_scores(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = tmp_path / "outputs" / "train" / "2026-01-01_00-00-00-000000"
    write_config(run_dir, 0.001, "unet")
    write_events(run_dir, {"val/mIoU": [0.5, 0.7, 0.65], "val/loss": [0.9, 0.5, 0.6]}, START)
    writer = SummaryWriter(str(run_dir))
    writer.add_scalar("test/mIoU", 0.68, 3 * STEPS_PER_EPOCH, walltime=START + 100)
    writer.close()
    out = run_cli(capsys, run_dir)
    # the best, 0.70, is the second validation: epoch 1, logged at the epoch's last step
    assert f"best:  val/mIoU 0.7000 at epoch 1, step {2 * STEPS_PER_EPOCH - 1}; last 0.6500" in out
    assert "test:  test/mIoU 0.6800" in out
    assert "val/mIoU per validation: 0.5000 0.7000 0.6500" in out
    assert out.splitlines()[1].rstrip().endswith(run_dir.name)  # the run's row names it
    # a table of several runs, and machine-readable formats, stay as they are
    assert "per validation" not in run_cli(capsys, run_dir, "--format", "csv")
