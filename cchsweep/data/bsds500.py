"""BSDS500's 500 images (the MNIST-M backgrounds), verified image by image and fetched when missing.

Found in `<data_dir>` as `bsds500/{train,val,test}/*.jpg`, the canonical archive's extracted
`BSR/BSDS500/data/images/`, or the archive `BSR_bsds500.tgz` itself. Every image is checked
against the SHA-256 manifest shipped in the package (`bsds500.sha256`, the content of the BIDS
GitHub mirror), on every read (~0.1 s), so a wrong or damaged copy is refused by name.

When none is there and downloads are allowed, the sources are tried in order (pooch, progress on
stderr): the canonical archive from Berkeley, then the BIDS/BSDS500 GitHub mirror at a pinned
commit, file by file. The images are verified in a temporary folder and only then renamed to
`<data_dir>/bsds500/`, so an interrupted or refused download leaves nothing behind.
`$CCHSWEEP_BSDS500_URLS` (comma-separated) replaces the sources: an entry ending in .tgz or
.tar.gz is an archive, any other a base URL holding `{split}/{name}.jpg`.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import sys
import tarfile
import tempfile
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from pathlib import Path

from cchsweep.data.paths import downloads_allowed, missing_data_error, remove_stale_staging, would_download
from cchsweep.errors import UsageError

SPLITS = ("train", "val", "test")
COUNTS = {"train": 200, "val": 100, "test": 200}
ARCHIVE = "BSR_bsds500.tgz"
ARCHIVE_URL = "http://www.eecs.berkeley.edu/Research/Projects/CS/vision/grouping/BSR/BSR_bsds500.tgz"
MIRROR_COMMIT = "a04b7c6c3a9f0ace74bf205c72a43d32e1c72722"
MIRROR_URL = f"https://raw.githubusercontent.com/BIDS/BSDS500/{MIRROR_COMMIT}/BSDS500/data/images/"
URLS_ENV = "CCHSWEEP_BSDS500_URLS"
ARCHIVE_MEMBER = re.compile(r"(?:^|/)BSR/BSDS500/data/images/(train|val|test)/([^/]+\.jpg)$")


@lru_cache(maxsize=1)
def manifest() -> dict[str, str]:
    """ "split/name.jpg" -> SHA-256, in train, val, test order and by name within a split."""
    lines = Path(__file__).with_name("bsds500.sha256").read_text().split("\n")
    return {name: digest for digest, name in (line.split() for line in lines if line.strip())}


def sources() -> list[str]:
    env = os.environ.get(URLS_ENV, "").strip()
    return [u.strip() for u in env.split(",") if u.strip()] if env else [ARCHIVE_URL, MIRROR_URL]


def load_images(data_dir: Path, *, allow_download: bool | None = None) -> list[tuple[str, bytes]]:
    """The 500 images' (name, JPEG bytes), verified, downloading them first if missing and allowed."""
    data_dir = Path(data_dir)
    found = _local(data_dir)
    if found is None:
        if not downloads_allowed(allow_download):
            raise _missing_error(data_dir)
        download(data_dir)
        found = _local(data_dir)
        if found is None:  # download() put every verified image in place; something removed them since
            raise _missing_error(data_dir)
    return _verified_all(found)


def check_images(data_dir: Path) -> str | None:
    """For a dry run, which must neither download nor create anything: a local copy verified image by
    image (~0.1 s, so a damaged one stops the dry run as it would the run), then None, or what a real
    run would download; UsageError when it could not (downloads forbidden)."""
    data_dir = Path(data_dir)
    found = _local(data_dir)
    if found is not None:
        _verified_all(found)
        return None
    if not downloads_allowed():
        raise _missing_error(data_dir)
    return would_download("BSDS500 (500 images, 37 MB)", data_dir, sources())


def _missing_error(data_dir: Path) -> UsageError:
    return missing_data_error(
        "BSDS500 images",
        data_dir,
        ["bsds500/{train,val,test}/*.jpg", f"or {ARCHIVE}"],
        f"download {ARCHIVE} from {ARCHIVE_URL} (or the BIDS/BSDS500 GitHub mirror) into that "
        "directory, point --data-dir/$CCHSWEEP_DATA at a directory holding bsds500/, or allow "
        "downloads (unset $CCHSWEEP_OFFLINE)",
    )


def _verified_all(found) -> list[tuple[str, bytes]]:
    """Every manifest image of a local copy, (name, bytes), each checked against its SHA-256."""
    where, read = found
    return [(name, verified(name, read(name), where)) for name in manifest()]


def verified(name: str, data: bytes | None, where: str) -> bytes:
    """The image's bytes if they match the manifest, else a one-line error naming the file."""
    if data is None:
        raise UsageError(
            f"BSDS500 image {name} is missing from {where}; restore it, or delete {where} to download all images again"
        )
    digest = hashlib.sha256(data).hexdigest()
    if digest != manifest()[name]:
        raise UsageError(
            f"BSDS500 image {name} in {where} has SHA-256 {digest[:12]}..., expected "
            f"{manifest()[name][:12]}...: replace it with an intact copy, or delete {where} to "
            f"download all images again"
        )
    return data


def _local(data_dir: Path):
    """(where, name -> bytes or None) for the first local copy, or None when there is none. A bsds500/
    folder is the copy even when empty or partial, so the run names what is missing from it (a download
    beside it would not replace it: it was downloaded, then thrown away, and the run crashed)."""
    own = data_dir / "bsds500"
    if own.exists() and not own.is_dir():
        raise UsageError(f"{own} is a file, not the BSDS500 image folder; move it away (or delete it) and run again")
    for root in (own, data_dir / "BSR" / "BSDS500" / "data" / "images"):
        if (root == own and own.is_dir()) or all((root / split).is_dir() for split in SPLITS):
            return str(root), lambda name, root=root: _read(root / name)
    archive = data_dir / ARCHIVE
    if archive.is_file():
        members = _archive_members(archive)
        return str(archive), members.get
    return None


def _read(path: Path) -> bytes | None:
    return path.read_bytes() if path.is_file() else None


def _archive_members(archive: Path) -> dict[str, bytes]:
    found: dict[str, bytes] = {}
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar:
                match = ARCHIVE_MEMBER.search(member.name)
                data = tar.extractfile(member) if match and member.isfile() else None
                if match and data is not None:
                    found[f"{match[1]}/{match[2]}"] = data.read()
    except (OSError, EOFError, tarfile.TarError) as exc:
        raise UsageError(f"{archive} is unreadable ({exc}); delete it and download it again") from None
    return found


def download(data_dir: Path) -> Path:
    """Fetch, verify and install the images as <data_dir>/bsds500, trying each source in turn."""
    import pooch  # only needed on this path

    pooch.get_logger().setLevel("WARNING")  # we say ourselves what is fetched from where
    target = data_dir / "bsds500"
    data_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_staging(data_dir, ".bsds500-")
    errors = []
    for url in sources():
        staging = Path(tempfile.mkdtemp(prefix=".bsds500-", dir=data_dir))
        try:
            print(f"downloading BSDS500 (500 images, 37 MB) from {url}", file=sys.stderr, flush=True)
            fetch = _fetch_archive if url.endswith((".tgz", ".tar.gz")) else _fetch_files
            fetch(url, staging)
            if not target.exists():  # another process may have finished first
                os.replace(staging / "bsds500", target)
            print(f"BSDS500: 500 images verified in {target}", file=sys.stderr, flush=True)
            return target
        except UsageError as exc:  # content refused: name the file, try the next source
            errors.append(f"{url}: {exc}")
        except Exception as exc:  # network, HTTP or disk errors: try the next source
            errors.append(f"{url}: {type(exc).__name__}: {exc}".replace("\n", " "))
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    raise UsageError(
        f"could not download BSDS500 into {target} ({'; '.join(errors)}); download {ARCHIVE} by "
        f"hand into {data_dir} or use --data-dir"
    )


def _fetch_archive(url: str, staging: Path) -> None:
    import pooch

    archive = Path(pooch.retrieve(url, known_hash=None, fname=ARCHIVE, path=staging, progressbar=True))
    members = _archive_members(archive)
    archive.unlink()
    for name in manifest():
        _install(staging, name, verified(name, members.get(name), url))


def _fetch_files(url: str, staging: Path) -> None:
    import pooch
    from tqdm.auto import tqdm

    base = url if url.endswith("/") else url + "/"
    names = list(manifest())
    raw = staging / "raw"

    def fetch(name: str) -> None:
        # no known_hash: the content is checked against the manifest below, with a message naming the file
        path = pooch.retrieve(base + name, known_hash=None, fname=name.replace("/", "_"), path=raw, progressbar=False)
        _install(staging, name, verified(name, Path(path).read_bytes(), base + name))

    with ThreadPoolExecutor(max_workers=8) as pool, tqdm(total=len(names), unit="image", file=sys.stderr) as bar:
        futures = [pool.submit(fetch, name) for name in names]
        try:
            for future in futures:
                future.result()
                bar.update(1)
        finally:
            for future in futures:  # after the first failure, fetch nothing more from this source
                future.cancel()


def _install(staging: Path, name: str, data: bytes) -> None:
    path = staging / "bsds500" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
