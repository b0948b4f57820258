"""Screenshot TensorBoard's tabs over a logdir, as a browser shows them, with headless Chromium.

    python scripts/figures/tensorboard_screenshots.py outputs/train/multirun/<date_time> \\
        --out docs/images --prefix sweep

Starts TensorBoard's own server on a free port of 127.0.0.1, waits until it lists the logdir's
runs, then loads each tab (``--tab``: a URL fragment such as ``images`` or
``images&tagFilter=predictions``, or a query and fragment such as
``?tagFilter=predictions#timeseries``) in Chromium and writes ``<out>/<prefix>_<tab>.png``. Each
PNG is reduced to 256 colours, then in size, until it is under ``--max-kb``, so the images stay
small enough for a repository. ``--actual-size TAG`` also writes the last image of TAG of the
first run as TensorBoard serves it (what "Show actual image size" shows), to
``<out>/<prefix>_<tag>.png``. Prints every command it runs. Needs Chromium
(``apt-get install chromium``).
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from PIL import Image

TABS = ("timeseries", "scalars", "images", "hparams", "custom_scalars")
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def run_logged(command: list[str], **options: object) -> subprocess.CompletedProcess[str]:
    print("$", shlex.join(command), flush=True)
    return subprocess.run(command, text=True, capture_output=True, **options)  # type: ignore[call-overload]


def wait_for_runs(url: str, process: subprocess.Popen[bytes], timeout: float) -> list[str]:
    """Poll TensorBoard's run list until the logdir's runs appear (its first scan takes a few
    seconds with ``--load_fast=false``)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"tensorboard exited with status {process.returncode}; run it by hand")
        try:
            with urllib.request.urlopen(f"{url}/data/runs", timeout=5) as response:
                runs = json.load(response)
            if runs:
                # one more scan interval, so that every run's events are loaded
                time.sleep(6)
                return runs
        except (urllib.error.URLError, ConnectionError, json.JSONDecodeError):
            pass
        time.sleep(1)
    sys.exit(f"tensorboard at {url} listed no run within {timeout:.0f} s; is the logdir right?")


def save_served_image(url: str, run: str, tag: str, path: Path) -> None:
    """The last image of ``tag`` in ``run``, as TensorBoard's image plugin serves it."""
    query = urllib.parse.urlencode({"run": run, "tag": tag})
    with urllib.request.urlopen(f"{url}/data/plugin/images/images?{query}", timeout=30) as listing:
        images = json.load(listing)
    if not images:
        sys.exit(f"run {run!r} has no image {tag!r}; see the IMAGES tab for the tags it has")
    with urllib.request.urlopen(
        f"{url}/data/plugin/images/individualImage?{images[-1]['query']}", timeout=30
    ) as image:
        path.write_bytes(image.read())


def shrink(path: Path, max_bytes: int) -> None:
    """Reduce a PNG larger than ``max_bytes`` to 256 colours, then its size by steps of 0.85,
    until it fits."""
    if path.stat().st_size <= max_bytes:
        return
    with Image.open(path) as shot:
        image = shot.convert("RGB")
    scale = 1.0
    while True:
        size = (round(image.width * scale), round(image.height * scale))
        scaled = image if scale == 1.0 else image.resize(size, Image.Resampling.LANCZOS)
        scaled.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)
        if path.stat().st_size <= max_bytes or scale < 0.3:
            return
        scale *= 0.85


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("logdir", type=Path)
    parser.add_argument("--out", type=Path, default=Path("docs/images"))
    parser.add_argument("--prefix", default="tensorboard", help="start of the PNG names")
    parser.add_argument(
        "--tab",
        action="append",
        help=f"a URL fragment or ?query#fragment, repeatable (default: {', '.join(TABS)})",
    )
    parser.add_argument("--width", type=int, default=1400)
    parser.add_argument("--height", type=int, default=1000)
    parser.add_argument(
        "--wait-ms", type=int, default=20000, help="virtual time a page gets to render"
    )
    parser.add_argument(
        "--actual-size", action="append", default=[], metavar="TAG", help="repeatable"
    )
    parser.add_argument("--max-kb", type=int, default=300, help="largest PNG, in KB")
    parser.add_argument("--chromium", help="the browser's executable (default: found on PATH)")
    args = parser.parse_args()
    if not args.logdir.is_dir():
        sys.exit(f"logdir {args.logdir} is not a folder; give the folder of the runs to compare")
    browser = args.chromium or next(filter(None, map(shutil.which, BROWSERS)), None)
    if browser is None:
        sys.exit("no Chromium found: install it (apt-get install chromium) or pass --chromium")
    args.out.mkdir(parents=True, exist_ok=True)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    serve = [
        *(
            ["tensorboard"]
            if shutil.which("tensorboard")
            else [sys.executable, "-m", "tensorboard.main"]
        ),
        "--logdir",
        str(args.logdir),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--load_fast=false",
    ]
    print("$", shlex.join(serve), flush=True)
    server = subprocess.Popen(serve, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        runs = wait_for_runs(url, server, timeout=120)
        print(f"tensorboard at {url} lists {len(runs)} runs: {', '.join(runs)}")
        for tab in args.tab or TABS:
            name = re.sub(r"[^A-Za-z0-9]+", "_", tab).strip("_")
            path = (args.out / f"{args.prefix}_{name}.png").resolve()
            shot = run_logged(
                [
                    browser,
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--hide-scrollbars",
                    f"--screenshot={path}",
                    f"--window-size={args.width},{args.height}",
                    f"--virtual-time-budget={args.wait_ms}",
                    f"{url}/{tab}" if tab.startswith("?") else f"{url}/#{tab}",
                ],
                timeout=300,
            )
            if shot.returncode != 0 or not path.is_file():
                sys.exit(
                    f"{browser} wrote no {path} (status {shot.returncode}): {shot.stderr[-500:]}"
                )
            shrink(path, args.max_kb * 1024)
            print(f"wrote {path} ({path.stat().st_size // 1024} KB)")
        for tag in args.actual_size:
            name = re.sub(r"[^A-Za-z0-9]+", "_", tag).strip("_")
            path = (args.out / f"{args.prefix}_{name}.png").resolve()
            save_served_image(url, runs[0], tag, path)
            shrink(path, args.max_kb * 1024)
            print(f"wrote {path} ({path.stat().st_size // 1024} KB): {tag} of {runs[0]}")
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
