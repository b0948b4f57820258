"""The command-line check (seglab/config/check.py, seglab/config/variants.py): the user's
typos and unset values refused in one line with the key meant, and what must still run.

Most cases call `check_command_line` as seglab-train calls it (it composes conf/ with
Hydra's compose API: no training); a few go through the entry points for the exit status,
the one stderr line and the absence of any run directory.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from tiny import CONF_DIR

from seglab.config.check import check_command_line
from seglab.engine.checkpoints import CHECKPOINT_KEY
from seglab.errors import SeglabError

#: Each check keeps one of the user's cases in the quick subset; every case composes conf/ once
#: or more (a few tenths of a second), so the others are slow.
SLOW = pytest.mark.slow


def refusal(*args: str, command: str = "seglab-train", config: str = "train") -> str:
    """The message the check refuses ``args`` with; fails the test if it passes them."""
    with pytest.raises(SeglabError) as refused:
        check_command_line(command, config, list(args), str(CONF_DIR))
    message = str(refused.value)
    assert "\n" not in message
    return message


def passes(*args: str, config: str = "train", config_path: Path = CONF_DIR) -> None:
    check_command_line("seglab-train", config, list(args), str(config_path))


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["optimiser.lr=1e-3"], r"did you mean optimizer\.lr\?"),
        (["trainer.max_epoch=1"], r"did you mean trainer\.max_epochs\?"),
        pytest.param(
            ["data.loader.batchsize=4"], r"did you mean data\.loader\.batch_size\?", marks=SLOW
        ),
        pytest.param(
            ["loss.losses.ce.label_smothing=0.1"],
            r"did you mean loss\.losses\.ce\.label_smoothing",
            marks=SLOW,
        ),
        # the key of ce_dice, given to plain ce: its own weights key is the one meant
        pytest.param(
            ["loss=ce", "loss.weights=[1,2,3,4]"], r"did you mean loss\.class_weights\?", marks=SLOW
        ),
        pytest.param(
            ["scheduler=cosine", "scheduler.warmup_step=3"],
            r"did you mean scheduler\.warmup_steps",
            marks=SLOW,
        ),
        pytest.param(
            ["experiment=camvid_cpu", "trainer.max_epoch=2"],
            r"did you mean trainer\.max_epochs\?",
            marks=SLOW,
        ),
        pytest.param(
            ["~callbacks.model_checkpont"],
            r"did you mean callbacks\.model_checkpoint\?",
            marks=SLOW,
        ),
        pytest.param(
            ["hydra.sweeper.n_trial=3", "hparams_search=synthetic_optuna"],
            r"did you mean hydra\.sweeper\.n_trials\?",
            marks=SLOW,
        ),
    ],
)
def test_a_key_that_names_nothing_gets_the_closest_key(args: list[str], expected: str) -> None:
    message = refusal(*args)
    assert any(message.startswith(f"{arg}: ") for arg in args), message
    assert re.search(expected, message), message
    assert "+" not in message.split(";")[-1]  # never Hydra's "use +key" advice


@pytest.mark.parametrize(
    ("args", "moved"),
    [
        (["data.batch_size=4"], "data.loader.batch_size"),
        pytest.param(
            ["data=folder", "data.root=/data", "data.crop_size=[64,64]"],
            "data.augment.crop_size",
            marks=SLOW,
        ),
        pytest.param(["+data.fold=1"], "data.splits.fold", marks=SLOW),
        pytest.param(
            ["-m", "data.labeled_fraction=0.1,0.2"], "data.few_labels.labeled_fraction", marks=SLOW
        ),
    ],
)
def test_a_data_key_of_before_the_groups_names_the_key_it_moved_to(
    args: list[str], moved: str
) -> None:
    message = refusal(*args)
    old = moved.replace(moved.split(".")[1] + ".", "", 1)
    assert re.search(rf"{re.escape(old)}.*; it moved to {re.escape(moved)}$", message), message


def test_a_key_that_moved_nowhere_today_still_gets_the_closest_key() -> None:
    """The synthetic data has no folder layout: its typo is a typo."""
    assert refusal("data.image_dir=x").endswith("did you mean data.image_size?")


def test_an_argument_the_config_leaves_out_is_added_with_plus() -> None:
    message = refusal("callbacks.model_checkpoint.every_n_epochs=1")
    assert "add it with +callbacks.model_checkpoint.every_n_epochs=1" in message
    assert "ModelCheckpoint" in message


@pytest.mark.parametrize(
    ("arg", "expected"),
    [
        ("+optimiser.lr=1e-3", r"nothing reads optimiser; did you mean optimizer\.lr\?"),
        ("+trainer.max_epoch=1", r"takes no argument max_epoch; did you mean trainer\.max_epochs"),
        pytest.param(
            "++trainer.max_epoch=1",
            r"takes no argument max_epoch; did you mean trainer\.max_epochs",
            marks=SLOW,
        ),
        pytest.param("+callbacks.lr_monitor=1", r"nothing reads callbacks\.lr_monitor", marks=SLOW),
        pytest.param(
            "++new.key=1", r"nothing reads new; the top-level keys are: task_name", marks=SLOW
        ),
    ],
)
def test_a_plus_key_that_nothing_reads_is_refused(arg: str, expected: str) -> None:
    message = refusal(arg)
    assert message.startswith(f"{arg}: "), message
    assert re.search(expected, message), message


def test_a_plus_key_under_a_target_is_refused_listing_its_keys() -> None:
    message = refusal("+model.encoder.foo=1")
    assert "seglab.models.ConvEncoder (model.encoder) takes no argument foo" in message
    assert re.search(r"the keys of model\.encoder are: .*widths", message), message


@pytest.mark.slow
def test_a_plus_key_of_one_optimizer_is_refused_for_another() -> None:
    message = refusal("optimizer=sgd", "+optimizer.betas=[0.9,0.99]")
    assert "torch.optim.SGD (optimizer) takes no argument betas" in message
    assert "momentum" in message


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["model/encoder=resnet"], r"did you mean model/encoder=resnet50\? \(options: .*resnet34"),
        pytest.param(["trainer=gpuu"], r"did you mean trainer=gpu\?", marks=SLOW),
        pytest.param(["experiment=baselin"], r"did you mean experiment=baseline\?", marks=SLOW),
        pytest.param(
            ["model/decodr=unet"],
            r"no config group model/decodr; did you mean model/decoder\?",
            marks=SLOW,
        ),
        (["model/attention=null"], r"model/attention takes one of its options, not null"),
        # the group's option written as a key's value: Hydra puts a string in the node's place
        (["model.encoder=resnet34"], r"did you mean model/encoder=resnet34\?"),
        pytest.param(
            ["model.encoder=resnt34"], r"did you mean model/encoder=resnet34\?", marks=SLOW
        ),
    ],
)
def test_a_group_or_option_that_names_nothing_gets_the_closest(
    args: list[str], expected: str
) -> None:
    message = refusal(*args)
    assert re.search(expected, message), message


def test_an_index_past_the_end_of_a_list_names_its_entries() -> None:
    message = refusal("data.palette.7=[1,2,3]")
    assert "data.palette is a list of 4: data.palette.0 to data.palette.3" in message


def test_a_search_space_key_is_swept_itself() -> None:
    message = refusal("-m", "hydra.sweeper.params.optimizer.lr=1e-3,1e-2")
    assert "e.g. -m optimizer.lr=1e-3,1e-2" in message


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["-m", "optimiser.lr=1e-3,1e-2"], r"did you mean optimizer\.lr\?"),
        pytest.param(
            ["-m", "optimizer.lr=1e-3,1e-2", "optimiser.lr=1"],
            r"did you mean optimizer\.lr\?",
            marks=SLOW,
        ),
        (["-m", "model/decoder=unet,fpnn"], r"did you mean model/decoder=fpn\?"),
        pytest.param(
            ["-m", "model/decoder=glob(u*)", "optimiser.lr=1"],
            r"did you mean optimizer\.lr\?",
            marks=SLOW,
        ),
        # unet has the key, fpn (the sweep's second job) does not
        (
            ["-m", "model/decoder=unet,fpn", "model.decoder.upsample=bilinear"],
            r"no key model\.decoder\.upsample.*\(in the jobs with model/decoder=fpn\)",
        ),
        # the sweeper's search space tries fpn too
        pytest.param(
            ["-m", "hparams_search=synthetic_optuna", "model.decoder.upsample=bilinear"],
            r"no key model\.decoder\.upsample.*\(in the jobs with model/decoder=fpn\)",
            marks=SLOW,
        ),
    ],
)
def test_a_multirun_is_checked_in_every_variant(args: list[str], expected: str) -> None:
    message = refusal(*args)
    assert re.search(expected, message), message


def test_data_folder_without_root_is_one_line_with_an_example() -> None:
    message = refusal("data=folder")
    assert message.startswith("data.root is not set")
    assert "e.g. seglab-train data=folder data.root=" in message


@pytest.mark.slow
def test_an_unset_value_wins_over_a_typo_of_it() -> None:
    message = refusal("data=folder", "data.rot=/data")
    assert "did you mean data.root?" in message


@pytest.mark.parametrize(
    "args",
    [
        ["+trainer.gradient_clip_val=1"],
        pytest.param(["++trainer.max_epochs=1"], marks=SLOW),
        # an interpolation reads the new key
        ["+lr=1e-3", "optimizer.lr=${lr}"],
        # a new component of a node whose entries seglab builds one by one
        ["+callbacks.lr_monitor={_target_:pytorch_lightning.callbacks.LearningRateMonitor}"],
        pytest.param(
            ["+callbacks.lr_monitor._target_=pytorch_lightning.callbacks.LearningRateMonitor"],
            marks=SLOW,
        ),
        pytest.param(["+callbacks.model_checkpoint.every_n_epochs=1"], marks=SLOW),
        pytest.param(["~callbacks.model_checkpoint"], marks=SLOW),
        pytest.param(["optimizer=adamw", "optimizer.weight_decay=0.1"], marks=SLOW),
        pytest.param(["optimizer=adamw", "+optimizer.betas=[0.9,0.99]"], marks=SLOW),
        pytest.param(
            ["data=folder", "data.root=/data", "data.splits.val_fraction=0.2"], marks=SLOW
        ),
        pytest.param(["data.palette.0=[1,2,3]"], marks=SLOW),
        ["hydra.run.dir=/tmp/run", "hydra.job.chdir=false", "+hydra.job.env_set.SEGLAB_X=1"],
        ["--help"],
        # Hydra prints the config as it is
        pytest.param(["--cfg", "job", "optimiser.lr=1"], marks=SLOW),
        pytest.param(["-m", "hparams_search=synthetic_optuna"], marks=SLOW),
        pytest.param(
            ["-m", "hparams_search=synthetic_optuna", "optimizer.lr=interval(1e-4,1e-2)"],
            marks=SLOW,
        ),
        pytest.param(["-m", "model/decoder=glob(*)"], marks=SLOW),
        pytest.param(["-m", "data.splits.folds=5", "data.splits.fold=range(5)"], marks=SLOW),
        ["experiment=baseline"],
        pytest.param(["experiment=camvid_cpu"], marks=SLOW),
        pytest.param(["model/attention=none"], marks=SLOW),
    ],
)
def test_what_a_user_may_write_still_passes(args: list[str]) -> None:
    passes(*args)


@pytest.mark.slow
def test_every_experiment_passes() -> None:
    for option in sorted(p.stem for p in (CONF_DIR / "experiment").glob("*.yaml")):
        passes(f"experiment={option}")


@pytest.fixture
def saved_run(tmp_path: Path, compose) -> Path:
    """A run's ``.hydra`` folder as Hydra saves it: the composed config and Hydra's own."""
    cfg = compose("train", return_hydra_config=True)
    saved = tmp_path / "run" / ".hydra"
    saved.mkdir(parents=True)
    tree = OmegaConf.to_container(cfg, resolve=False)
    OmegaConf.save({"hydra": tree.pop("hydra")}, saved / "hydra.yaml")
    OmegaConf.save(tree, saved / "config.yaml")
    return saved


def test_a_saved_run_is_checked_against_its_own_config(saved_run: Path) -> None:
    from seglab.runs.reproduce import register_search_path

    register_search_path()
    rerun = ["--config-path", str(saved_run), "--config-name", "config"]
    passes(*rerun, "trainer.max_epochs=1")
    with pytest.raises(SeglabError, match=r"did you mean optimizer\.lr\?"):
        passes(*rerun, "optimiser.lr=1e-3")


def test_a_run_saved_before_a_trainer_key_existed_may_add_it(saved_run: Path) -> None:
    """seglab reads trainer.channels_last and hands Lightning the rest: not the Trainer's
    argument, still read."""
    from seglab.runs.reproduce import register_search_path

    config = OmegaConf.load(saved_run / "config.yaml")
    del config.trainer["channels_last"]
    OmegaConf.save(config, saved_run / "config.yaml")
    register_search_path()
    passes(
        "--config-path", str(saved_run), "--config-name", "config", "+trainer.channels_last=true"
    )


@pytest.mark.slow
def test_seglab_data_stats_keys_are_checked() -> None:
    message = refusal("data.num_trian=3", command="seglab-data stats", config="data_stats")
    assert "did you mean data.num_train?" in message


# -- through the entry points: exit status 2, one stderr line, nothing written --------------


@pytest.mark.parametrize(
    ("arg", "ending"),
    [
        ("optimiser.lr=1e-3", "did you mean optimizer.lr?"),
        pytest.param("data.batch_size=4", "it moved to data.loader.batch_size", marks=SLOW),
    ],
)
def test_seglab_train_refuses_a_typo_in_one_line(
    cli, tmp_path: Path, arg: str, ending: str
) -> None:
    from seglab.cli.train import main

    code, _, err = cli(main, arg, f"paths.output_root={tmp_path}/out", cwd=tmp_path)
    assert code == 2
    (line,) = err.strip().splitlines()
    assert line.startswith(f"seglab-train: error: {arg}: ")
    assert line.endswith(ending)
    assert not (tmp_path / "out").exists()


def test_a_sweep_is_refused_before_any_job(cli, tmp_path: Path) -> None:
    from seglab.cli.train import main

    args = ["-m", "optimiser.lr=1e-3,1e-2", f"paths.output_root={tmp_path}/out"]
    code, out, err = cli(main, *args, cwd=tmp_path)
    assert code == 2
    (line,) = err.strip().splitlines()
    assert re.fullmatch(r"seglab-train: error: optimiser\.lr=1e-3,1e-2: .*optimizer\.lr\?", line)
    assert "#0" not in out  # Hydra's "Launching jobs" lists each job
    assert not (tmp_path / "out").exists()


def test_seglab_eval_without_ckpt_path_is_one_line(cli, tmp_path: Path) -> None:
    from seglab.cli.eval import main

    code, _, err = cli(main, cwd=tmp_path)
    assert code == 2
    (line,) = err.strip().splitlines()
    assert line.startswith("seglab-eval: error: ckpt_path is not set")
    assert "e.g. seglab-eval ckpt_path=outputs/train/<run>/checkpoints/best.ckpt" in line
    assert line.endswith("(or model_path=model.onnx)")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A checkpoint holding only a run's config: the commands check their command line
    against it before they read any weights."""
    from hydra import compose, initialize_config_dir

    folder = tmp_path_factory.mktemp("checkpoint")
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("train", [f"paths.output_dir={folder}"])
    path = folder / "best.ckpt"
    torch.save({CHECKPOINT_KEY: {"config": OmegaConf.to_container(cfg, resolve=True)}}, path)
    return path


@pytest.mark.parametrize(
    ("command", "args", "expected"),
    [
        (
            "predict",
            ["input=x", "output_dir=y"],
            r"output_dir=y: no key output_dir; did you mean output\?",
        ),
        pytest.param(
            "export", ["output=m.onnx", "quantise=int8"], r"did you mean quantize\?", marks=SLOW
        ),
        pytest.param("eval", ["splt=val"], r"did you mean split\?", marks=SLOW),
        pytest.param(
            "eval",
            ["data.loader.batch_sise=2"],
            r"did you mean data\.loader\.batch_size\?",
            marks=SLOW,
        ),
        pytest.param("prune", ["amout=0.3"], r"did you mean amount\?", marks=SLOW),
    ],
)
def test_checkpoint_commands_refuse_a_typo(
    cli, tmp_path: Path, checkpoint: Path, command: str, args: list[str], expected: str
) -> None:
    from importlib.metadata import entry_points

    (entry,) = entry_points(group="console_scripts", name=f"seglab-{command}")
    main = entry.load()
    code, _, err = cli(main, f"ckpt_path={checkpoint}", *args, cwd=tmp_path)
    assert code == 2
    (line,) = err.strip().splitlines()
    assert line.startswith(f"seglab-{command}: error: ")
    assert re.search(expected, line), line
    assert list(tmp_path.iterdir()) == []
