"""Data that fetch themselves: MNIST and BSDS500 served from a local HTTP server on 127.0.0.1.

The served copies are `../shared/data` (MNIST's gz files are recompressed there, so only a
content check accepts them), the canonical archive layout built from it, a per-file mirror, and
mirrors with one damaged file. Nothing here reaches beyond loopback.
"""

import gzip
import os
import shutil
import tarfile
import threading
import time
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from conftest import SHARED_DATA, run_cli

from cchsweep import grid
from cchsweep.data import bsds500
from cchsweep.data.mnist import FILES, load_mnist
from cchsweep.errors import UsageError
from cchsweep.runner import check_data
from searchspaces import STUDIES

MNIST_NAMES = sorted(spec.filename for spec in FILES.values())
DAMAGED_IMAGE = "test/100007.jpg"


class Server:
    """A static file server on 127.0.0.1 that records every requested path."""

    def __init__(self, root: Path):
        self.requests: list[str] = []
        server = self

        class Handler(SimpleHTTPRequestHandler):
            def do_GET(self):
                server.requests.append(self.path)
                super().do_GET()

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(Handler, directory=str(root)))
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/{path}"


def _mirror(root: Path, damaged: str | None = None) -> None:
    for name in bsds500.manifest():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if name == damaged:
            data = bytearray((SHARED_DATA / "bsds500" / name).read_bytes())
            data[len(data) // 2] ^= 0xFF  # one flipped byte: still a file, wrong content
            path.write_bytes(bytes(data))
        else:
            path.symlink_to(SHARED_DATA / "bsds500" / name)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("served")
    (root / "mnist").mkdir()
    (root / "bad_mnist").mkdir()
    for name in MNIST_NAMES:
        (root / "mnist" / name).symlink_to(SHARED_DATA / "mnist" / name)
        (root / "bad_mnist" / name).symlink_to(SHARED_DATA / "mnist" / name)
    labels = root / "bad_mnist" / "t10k-labels-idx1-ubyte.gz"
    raw = bytearray(gzip.decompress(labels.read_bytes()))
    raw[100] = (raw[100] + 1) % 10  # a valid gz of a valid-looking IDX file with one wrong label
    labels.unlink()
    labels.write_bytes(gzip.compress(bytes(raw)))
    (root / "bsds").mkdir()
    with tarfile.open(root / "bsds" / bsds500.ARCHIVE, "w:gz", compresslevel=1) as tar:
        for split in bsds500.SPLITS:
            tar.add(SHARED_DATA / "bsds500" / split, arcname=f"BSR/BSDS500/data/images/{split}")
    _mirror(root / "mirror")
    _mirror(root / "bad_mirror", damaged=DAMAGED_IMAGE)
    s = Server(root)
    yield s
    s.httpd.shutdown()


@pytest.fixture
def online(monkeypatch):
    """Downloads allowed (conftest forbids them for every other test)."""
    monkeypatch.delenv("CCHSWEEP_OFFLINE", raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


def _tree(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*") if p.is_file())


@pytest.mark.slow
def test_a_run_on_an_empty_data_dir_fetches_verifies_and_caches_both(tmp_path, server):
    """A new user: no data, no $CCHSWEEP_DATA, an empty HOME. The run downloads MNIST and BSDS500
    into the per-user cache and verifies them; a second run downloads nothing."""
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("CCHSWEEP_DATA", "CCHSWEEP_OFFLINE", "XDG_CACHE_HOME")}
    env.update(HOME=str(home), NO_PROXY="127.0.0.1,localhost",
               CCHSWEEP_MNIST_URLS=server.url("mnist/"),
               CCHSWEEP_BSDS500_URLS=f"{server.url('bsds/' + bsds500.ARCHIVE)},{server.url('mirror/')}")
    args = ["run", "mnist_blur", "--profile", "smoke", "--set", "gamma=0", "--set", "temperature=3",
            "--set", "epochs=2", "--set", "mi_epochs=2", "--db", str(tmp_path / "r.duckdb")]
    before = len(server.requests)
    first = run_cli(*args, cwd=tmp_path, env=env)
    assert first.returncode == 0, first.stderr[-3000:]
    fetched = server.requests[before:]
    assert sorted(fetched) == sorted([f"/mnist/{n}" for n in MNIST_NAMES] + [f"/bsds/{bsds500.ARCHIVE}"])
    data = home / ".cache" / "cchsweep" / "data"
    assert _tree(data / "mnist") == MNIST_NAMES
    assert _tree(data / "bsds500") == sorted(bsds500.manifest())
    assert sorted(p.name for p in data.iterdir()) == ["bsds500", "mnist"]  # no staging folder or archive left
    assert "downloading BSDS500" in first.stderr and "500 images verified" in first.stderr
    assert "MNIST-M alpha=0.2 seed=0: 2,000/500 digits built in" in first.stderr

    again = run_cli(*args, "--force", cwd=tmp_path, env=env)
    assert again.returncode == 0, again.stderr[-3000:]
    assert len(server.requests) == before + len(fetched)  # nothing downloaded the second time
    assert "downloading" not in again.stderr and "MNIST-M" not in again.stderr  # built once, cached


def test_per_file_mirror_when_the_archive_fails(tmp_path, server, online, monkeypatch):
    monkeypatch.setenv(bsds500.URLS_ENV, f"{server.url('nowhere/' + bsds500.ARCHIVE)},{server.url('mirror')}")
    before = len(server.requests)
    images = bsds500.load_images(tmp_path)
    assert [name for name, _ in images] == list(bsds500.manifest()) and len(images) == 500
    assert len(server.requests) - before == 1 + 500  # the failed archive, then each image once
    assert _tree(tmp_path) == sorted(f"bsds500/{name}" for name in bsds500.manifest())
    bsds500.load_images(tmp_path)
    assert len(server.requests) - before == 501  # read from disk the second time


def test_a_corrupted_served_image_is_refused_by_name(tmp_path, server, online, monkeypatch):
    monkeypatch.setenv(bsds500.URLS_ENV, server.url("bad_mirror/"))
    with pytest.raises(UsageError) as info:
        bsds500.load_images(tmp_path)
    message = str(info.value)
    assert "\n" not in message and f"BSDS500 image {DAMAGED_IMAGE}" in message and "SHA-256" in message
    assert list(tmp_path.iterdir()) == []  # nothing half-written: no bsds500/, no staging folder


def test_a_corrupted_served_mnist_file_is_refused(tmp_path, server, online, monkeypatch):
    monkeypatch.setenv("CCHSWEEP_MNIST_URLS", server.url("bad_mnist/"))
    with pytest.raises(UsageError, match=r"could not download t10k-labels-idx1-ubyte.gz .*SHA-256") as info:
        load_mnist(tmp_path, "test")
    assert "\n" not in str(info.value)
    # the intact files kept, the damaged one not (and no staging folder)
    assert _tree(tmp_path) == [f"mnist/{n}" for n in MNIST_NAMES if n != "t10k-labels-idx1-ubyte.gz"]


def test_mnist_falls_back_to_the_next_mirror(tmp_path, server, online, monkeypatch):
    monkeypatch.setenv("CCHSWEEP_MNIST_URLS", f"{server.url('nowhere/')},{server.url('mnist/')}")
    x, y = load_mnist(tmp_path, "test")
    assert x.shape == (10000, 28, 28) and y[:3].tolist() == [7, 2, 1]


def test_offline_names_what_is_missing(tmp_path, monkeypatch):
    monkeypatch.setenv("CCHSWEEP_OFFLINE", "1")
    with pytest.raises(UsageError, match=r"BSDS500 images not found: expected bsds500/.*allow downloads"):
        bsds500.load_images(tmp_path)


def test_a_damaged_local_image_is_refused_by_name(tmp_path):
    shutil.copytree(SHARED_DATA / "bsds500", tmp_path / "bsds500")
    (tmp_path / "bsds500" / "val" / "101085.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(UsageError, match=r"BSDS500 image val/101085.jpg in .*bsds500 has SHA-256"):
        bsds500.load_images(tmp_path)
    (tmp_path / "bsds500" / "val" / "101085.jpg").unlink()
    with pytest.raises(UsageError, match=r"BSDS500 image val/101085.jpg is missing from"):
        bsds500.load_images(tmp_path)


def _served(server) -> dict:
    """The URL settings of a run fetching from the test server."""
    return {"CCHSWEEP_MNIST_URLS": server.url("mnist/"), bsds500.URLS_ENV: server.url("bsds/" + bsds500.ARCHIVE)}


def test_a_dry_run_on_an_empty_data_dir_downloads_and_creates_nothing(tmp_path, server):
    """README: a dry run touches nothing. Data a real run would fetch are said, not fetched."""
    data = tmp_path / "data"
    data.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("CCHSWEEP_DATA", "CCHSWEEP_OFFLINE")}
    env.update(_served(server), NO_PROXY="127.0.0.1,localhost")
    before = len(server.requests)
    out = run_cli("run", "mnist_blur", "--profile", "smoke", "--data-dir", str(data),
                  "--db", str(tmp_path / "r.duckdb"), "--dry-run", env=env)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[:2] == [
        f"data: MNIST (4 files, 11 MB) not in {data / 'mnist'} (a real run would download it first, from "
        f"{server.url('mnist/')})",
        f"data: BSDS500 (500 images, 37 MB) not in {data} (a real run would download it first, from "
        f"{server.url('bsds/' + bsds500.ARCHIVE)})",
    ]
    assert lines[2].startswith("plan: mnist_blur (smoke): ") and lines[-1].startswith("estimate: ")
    assert "downloading" not in out.stderr and len(server.requests) == before  # nothing fetched
    assert list(data.iterdir()) == [] and [p.name for p in tmp_path.iterdir()] == ["data"]  # nothing created


def test_a_run_still_downloads_what_its_dry_run_said(tmp_path, server, online, monkeypatch, capsys):
    """The driver's data check of a real run fetches what the dry run said it would, and a dry run
    then has nothing to say (the files it finds are verified, and mnist_alpha shares them)."""
    for name, value in _served(server).items():
        monkeypatch.setenv(name, value)
    plans = [grid.plan(STUDIES[s], "smoke") for s in ("mnist_blur", "mnist_alpha")]
    assert check_data(plans, str(tmp_path), dry_run=True) == (tmp_path, None)
    said = capsys.readouterr()
    assert said.out.count("data: MNIST ") == 1 and said.out.count("data: BSDS500 ") == 1  # once for both studies
    assert list(tmp_path.iterdir()) == []
    assert check_data(plans, str(tmp_path), dry_run=False) == (tmp_path, None)
    assert "downloading MNIST" in capsys.readouterr().err
    assert _tree(tmp_path) == sorted([f"mnist/{n}" for n in MNIST_NAMES] + [f"bsds500/{n}" for n in bsds500.manifest()])
    assert check_data(plans, str(tmp_path), dry_run=True) == (tmp_path, None)
    assert capsys.readouterr().out == ""


def test_a_dry_run_stops_where_the_run_would(tmp_path, online, monkeypatch):
    """Present data are verified, and data that could not be downloaded (forbidden, or nowhere to
    write them) make the stop line, as before: nothing of it is downloaded or created."""
    monkeypatch.setenv("CCHSWEEP_MNIST_URLS", "http://127.0.0.1:9/")  # nothing listens: never to be asked
    plans = [grid.plan(STUDIES["mnist_blur"], "smoke")]
    (tmp_path / "mnist").write_text("a file where the directory would go")
    data, missing = check_data(plans, str(tmp_path), dry_run=True)
    assert data is None and "MNIST (4 files, 11 MB) not in" in missing and "is a file, not a directory" in missing
    (tmp_path / "mnist").unlink()
    shutil.copytree(SHARED_DATA / "mnist", tmp_path / "mnist")
    (tmp_path / "mnist").chmod(0o755)
    labels = tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz"
    labels.chmod(0o644)
    labels.write_bytes(b"not gzip")
    _, missing = check_data(plans, str(tmp_path), dry_run=True)
    assert missing.startswith(f"MNIST file {labels} is corrupt")
    monkeypatch.setenv("CCHSWEEP_OFFLINE", "1")
    labels.unlink()
    _, missing = check_data(plans, str(tmp_path), dry_run=True)
    assert missing.startswith("MNIST not found: expected t10k-labels-idx1-ubyte.gz in")
    assert "unset $CCHSWEEP_OFFLINE" in missing
    assert _tree(tmp_path) == [f"mnist/{n}" for n in MNIST_NAMES if n != labels.name]


def test_two_downloads_of_one_file_into_one_cache_both_succeed(tmp_path, online, monkeypatch):
    """Both staged into one mnist/.download, and the first to finish removed it under the other's
    download (FileNotFoundError: both runs of a fresh cache failed). The second request is held until
    the first download is done, so the old code fails every time."""
    from cchsweep.data import mnist

    served, hold = [], threading.Event()

    class Handler(SimpleHTTPRequestHandler):
        def do_GET(self):
            served.append(self.path)
            if len(served) == 2:
                hold.wait(30)
            super().do_GET()

        def log_message(self, *args):
            pass

    root = tmp_path / "served"
    root.mkdir()
    spec = FILES["test", "labels"]
    (root / spec.filename).symlink_to(SHARED_DATA / "mnist" / spec.filename)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(Handler, directory=str(root)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    monkeypatch.setenv(mnist.URLS_ENV, f"http://127.0.0.1:{httpd.server_address[1]}/")
    directory = tmp_path / "data" / "mnist"
    errors: list[BaseException] = []

    def fetch():
        try:
            mnist._download(spec, directory)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=fetch) for _ in range(2)]
    for t in threads:
        t.start()
    while all(t.is_alive() for t in threads):  # the first download done, the second request still held
        threading.Event().wait(0.05)
    hold.set()
    for t in threads:
        t.join(60)
    httpd.shutdown()
    assert errors == [] and len(served) == 2
    assert mnist.read_idx(directory / spec.filename, spec).shape == (10000,)
    assert _tree(directory) == [spec.filename]  # no staging folder left


@pytest.mark.parametrize("value, allowed", [("", True), ("0", True), ("off", True), ("No", True), ("1", False),
                                            ("true", False), ("on", False), ("yes", False)])
def test_offline_switch_values(monkeypatch, value, allowed):
    """CCHSWEEP_OFFLINE=off meant offline (anything not a 'no' did): 'off' is a no too."""
    from cchsweep.data.paths import downloads_allowed

    monkeypatch.setenv("CCHSWEEP_OFFLINE", value)
    assert downloads_allowed() is allowed


def test_a_killed_downloads_staging_folder_is_removed_by_the_next_download(tmp_path, server, online, monkeypatch):
    """A killed BSDS500 download left its .bsds500-XXXX folder (up to ~74 MB) forever; the next download
    removes such folders once they are an hour old, and keeps a fresh one (another run's, in progress)."""
    stale, fresh = tmp_path / ".bsds500-killed", tmp_path / ".bsds500-running"
    for folder in (stale, fresh):
        folder.mkdir()
        (folder / "part").write_bytes(b"x" * 10)
    old = time.time() - 2 * 3600
    os.utime(stale, (old, old))
    monkeypatch.setenv(bsds500.URLS_ENV, server.url("bsds/" + bsds500.ARCHIVE))
    bsds500.load_images(tmp_path)
    assert not stale.exists() and fresh.exists()
