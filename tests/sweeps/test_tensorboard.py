"""What a user sees of a sweep in TensorBoard: its own server, read through its HTTP data API."""

from __future__ import annotations

import json
import logging
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tiny import TINY, run_here

from seglab.cli.train import main as train_main

STATUSES = ["STATUS_UNKNOWN", "STATUS_SUCCESS", "STATUS_FAILURE", "STATUS_RUNNING"]


class Server:
    """TensorBoard serving ``logdir`` on 127.0.0.1, as ``tensorboard --logdir`` would."""

    def __init__(self, logdir: Path) -> None:
        from tensorboard import program

        # the server's reload thread outlives the test that started it and reports at INFO;
        # through the root logger's handlers (pytest's captured streams, closed by then) each
        # report would print a logging error
        logging.getLogger("tensorboard").propagate = False
        board = program.TensorBoard()
        board.configure(
            argv=[None, f"--logdir={logdir}", "--host=127.0.0.1", "--port=0", "--load_fast=false"]
        )
        self.url = board.launch().rstrip("/")

    def get(self, path: str, body: dict[str, Any] | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        headers = {} if body is None else {"Content-Type": "application/json"}
        request = urllib.request.Request(self.url + path, data=data, headers=headers)
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())

    def experiment(self) -> dict[str, Any]:
        return self.get("/data/plugin/hparams/experiment", {"experimentName": ""})

    def session_groups(self) -> list[dict[str, Any]]:
        query = {
            "experimentName": "",
            "allowedStatuses": STATUSES,
            "colParams": [],
            "startIndex": 0,
            "sliceSize": 100,
        }
        return self.get("/data/plugin/hparams/session_groups", query)["sessionGroups"]


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("runs")
    args = ["-m", *TINY, "optimizer.lr=0.001", "model/attention=none,scse"]
    code = run_here(train_main, *args, f"paths.output_root={root}", cwd=root)
    assert code == 0, f"seglab-train {' '.join(args)} exited with {code}"
    (sweep_dir,) = (root / "train" / "multirun").iterdir()
    return sweep_dir


@pytest.fixture(scope="module")
def server(sweep: Path) -> Iterator[Server]:
    server = Server(sweep)
    # the server reads the event files in the background after it starts
    deadline = time.monotonic() + 60
    while len(server.session_groups()) < 2 or len(server.get("/data/runs")) < 2:
        assert time.monotonic() < deadline, "TensorBoard did not load both runs"
        time.sleep(0.5)
    yield server


@pytest.mark.slow
def test_runs_are_named_by_their_swept_value(server: Server) -> None:
    assert sorted(server.get("/data/runs")) == ["attention=none", "attention=scse"]


@pytest.mark.slow
def test_hparams_put_the_swept_setting_first_and_leave_out_plumbing(server: Server) -> None:
    infos = server.experiment()["hparamInfos"]
    # a sweep's experiment lists only the settings that differ between its jobs: TensorBoard
    # shows five setting columns, and unchanged ones (data.loader.batch_size, data.cache_dir) took
    # two
    assert [info["name"] for info in infos] == ["model/attention"]
    assert infos[0]["differs"] is True and infos[0]["type"] == "DATA_TYPE_STRING"
    assert sorted(infos[0]["domainDiscrete"]) == ["none", "scse"]


@pytest.mark.slow
def test_hparams_metric_columns_start_with_the_headline(server: Server) -> None:
    # TensorBoard's table shows the first five metric columns it is given: the sweep's
    # experiment (seglab.sweeps.hparams) puts the ones a sweep is judged by first
    tags = [info["name"]["tag"] for info in server.experiment()["metricInfos"]]
    assert tags[:4] == ["val/mIoU_best", "val/mDice_best", "val/loss", "test/mIoU"]
    assert "val_IoU/ellipse" in tags and "epoch" in tags, "the other scalars stay columns"


@pytest.mark.slow
def test_every_job_is_a_session_group_with_its_metrics(server: Server, sweep: Path) -> None:
    from seglab.runs.directories import read_scalars

    groups = {group["name"]: group for group in server.session_groups()}
    assert sorted(groups) == ["attention=none", "attention=scse"]
    for name, group in groups.items():
        assert group["hparams"]["model/attention"] == name.split("=")[1]
        assert group["hparams"]["test_after_fit"] is True
        metrics = {value["name"]["tag"]: value["value"] for value in group["metricValues"]}
        scalars = read_scalars(sweep / name)
        for tag in ("val/mIoU_best", "val/mDice_best", "val/loss", "test/mIoU", "model/gflops"):
            assert metrics[tag] == pytest.approx(scalars[tag][-1][1]), tag
        (session,) = group["sessions"]
        assert session["status"] == "STATUS_SUCCESS"


@pytest.mark.slow
def test_images_and_the_headline_layout_are_served(server: Server) -> None:
    images = server.get("/data/plugin/images/tags")
    for run in ("attention=none", "attention=scse"):
        assert set(images[run]) >= {"val/predictions", "val/confusion_matrix"}
    (category,) = server.get("/data/plugin/custom_scalars/layout")["category"]
    charts = {chart["title"]: chart["multiline"]["tag"] for chart in category["chart"]}
    assert list(charts)[:2] == ["val/mIoU", "loss (train and val)"]
    assert charts["loss (train and val)"] == ["^train/loss$", "^val/loss$"]
    scalar_tags = server.get("/data/plugin/scalars/tags")["attention=none"]
    # per-class values are out of the val/ group, and the layout's patterns match them
    assert not [tag for tag in scalar_tags if tag.startswith("val/") and tag.count("/") > 1]
    assert "val_IoU/ellipse" in scalar_tags and charts["val IoU per class"] == ["^val_IoU/"]
