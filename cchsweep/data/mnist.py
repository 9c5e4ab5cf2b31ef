"""MNIST from the gzip-compressed IDX files under `<data_dir>/mnist/`, read with numpy.

The decompressed bytes are checked against their SHA-256, not the gz against its MD5: a
recompressed copy (different gz bytes, same content) is as good as a canonical download.
Checking happens on every read (about 0.3 s for all four files, the decompression we need
anyway), so nothing is ever written next to the data, which may be a read-only mount.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import sys
import tempfile
import zlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal

import numpy as np

from cchsweep.data.paths import (
    downloads_allowed,
    missing_data_error,
    missing_files,
    remove_stale_staging,
    would_download,
)
from cchsweep.errors import UsageError

Split = Literal["train", "test"]

# Tried in order; both serve the canonical gz files. $CCHSWEEP_MNIST_URLS (comma-separated base
# URLs) replaces them, e.g. with an institute's mirror or a test server.
MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
URLS_ENV = "CCHSWEEP_MNIST_URLS"

IMAGES_MAGIC = 0x00000803  # unsigned byte, 3 dimensions
LABELS_MAGIC = 0x00000801  # unsigned byte, 1 dimension


@dataclass(frozen=True)
class IdxFile:
    name: str  # without the .gz suffix
    sha256: str  # of the decompressed bytes
    gz_md5: str  # of the canonical gz download (for reference: downloads are checked by content)
    magic: int
    shape: tuple[int, ...]

    @property
    def filename(self) -> str:
        return f"{self.name}.gz"


FILES: dict[tuple[Split, str], IdxFile] = {
    ("train", "images"): IdxFile(
        "train-images-idx3-ubyte",
        "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        IMAGES_MAGIC,
        (60000, 28, 28),
    ),
    ("train", "labels"): IdxFile(
        "train-labels-idx1-ubyte",
        "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        "d53e105ee54ea40749a09fcbcd1e9432",
        LABELS_MAGIC,
        (60000,),
    ),
    ("test", "images"): IdxFile(
        "t10k-images-idx3-ubyte",
        "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        "9fb629c4189551a2d022fa330f9573f3",
        IMAGES_MAGIC,
        (10000, 28, 28),
    ),
    ("test", "labels"): IdxFile(
        "t10k-labels-idx1-ubyte",
        "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
        "ec29112dd5afa0611ce80d1b7f02629c",
        LABELS_MAGIC,
        (10000,),
    ),
}


def mnist_dir(data_dir: Path) -> Path:
    return Path(data_dir) / "mnist"


def load_mnist(data_dir: Path, split: Split, *, allow_download: bool | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 28, 28) uint8 and labels (N,) int64 of one split, verified."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', not {split!r}")
    directory = ensure_mnist(data_dir, allow_download=allow_download)
    images = read_idx(directory / FILES[split, "images"].filename, FILES[split, "images"])
    labels = read_idx(directory / FILES[split, "labels"].filename, FILES[split, "labels"])
    # Copies: the memoized arrays are shared and read-only (torch warns on those).
    return images.copy(), labels.astype(np.int64)


def ensure_mnist(data_dir: Path, *, allow_download: bool | None = None) -> Path:
    """The MNIST directory with all four files present, downloading the missing ones if allowed."""
    directory = mnist_dir(data_dir)
    missing = _missing(directory, allow_download)
    for spec in FILES.values():
        if spec.filename in missing:
            _download(spec, directory)
    return directory


def check_mnist(data_dir: Path) -> str | None:
    """For a dry run, which must neither download nor create anything: the files present verified
    (0.3 s for all four, so a damaged one stops the dry run as it would the run), then None, or
    what a real run would download; UsageError when it could not (downloads forbidden)."""
    directory = mnist_dir(data_dir)
    missing = _missing(directory, None)
    for spec in FILES.values():
        if spec.filename not in missing:
            read_idx(directory / spec.filename, spec)
    if not missing:
        return None
    what = "MNIST (4 files, 11 MB)" if len(missing) == len(FILES) else f"MNIST ({', '.join(missing)})"
    return would_download(what, directory, mirrors())


def _missing(directory: Path, allow_download: bool | None) -> list[str]:
    """The files not in directory; a UsageError naming them if they may not be downloaded, so a run
    and a dry run refuse alike."""
    missing = missing_files(directory, [f.filename for f in FILES.values()])
    if missing and not downloads_allowed(allow_download):
        raise missing_data_error(
            "MNIST",
            directory,
            missing,
            f"copy them there from {mirrors()[0]}, point --data-dir/$CCHSWEEP_DATA at a directory "
            "holding mnist/, or allow downloads (unset $CCHSWEEP_OFFLINE) to fetch them",
        )
    return missing


def mirrors() -> list[str]:
    env = os.environ.get(URLS_ENV, "").strip()
    urls = [u.strip() for u in env.split(",") if u.strip()] if env else list(MIRRORS)
    return [u if u.endswith("/") else u + "/" for u in urls]


def _download(spec: IdxFile, directory: Path) -> None:
    """Fetch one file into a staging folder, check its decompressed content, then move it in place:
    an interrupted or refused download never leaves a file under the final name."""
    import pooch  # only needed on this path

    pooch.get_logger().setLevel("WARNING")  # we say ourselves what is fetched from where
    errors = []
    for base in mirrors():
        staging: Path | None = None
        try:
            directory.mkdir(parents=True, exist_ok=True)
            remove_stale_staging(directory, ".download")
            # a folder of this process's own: a shared one was removed by whichever process finished first,
            # under the other's download (two runs filling one empty cache both failed)
            staging = Path(tempfile.mkdtemp(prefix=".download-", dir=directory))
            print(f"downloading MNIST {spec.filename} from {base}", file=sys.stderr, flush=True)
            # no known_hash: mirrors may recompress; the content's SHA-256 is checked below
            path = Path(
                pooch.retrieve(
                    base + spec.filename, known_hash=None, fname=spec.filename, path=staging, progressbar=True
                )
            )
            try:
                read_idx(path, spec)
            except UsageError:
                path.unlink()
                raise
            os.replace(path, directory / spec.filename)
            return
        except Exception as exc:  # network, HTTP, content or permission errors: try the next mirror
            errors.append(f"{base}: {type(exc).__name__}: {exc}".replace("\n", " "))
        finally:
            if staging is not None:
                shutil.rmtree(staging, ignore_errors=True)
    raise UsageError(
        f"could not download {spec.filename} into {directory} ({'; '.join(errors)}); "
        "download it by hand from an MNIST mirror into that directory or use --data-dir"
    )


def read_idx(path: Path, spec: IdxFile) -> np.ndarray:
    """The array in one gz IDX file, after checking its content hash, magic number and shape."""
    stat = Path(path).stat()
    # Keyed by size and mtime so that a replaced file is read (and verified) again.
    return _read_idx_cached(str(path), stat.st_size, stat.st_mtime_ns, spec)


@lru_cache(maxsize=8)
def _read_idx_cached(path: str, size: int, mtime_ns: int, spec: IdxFile) -> np.ndarray:
    del size, mtime_ns  # cache key only
    try:
        with open(path, "rb") as fh:
            raw = gzip.decompress(fh.read())
    except (OSError, EOFError, zlib.error) as exc:  # truncated or bit-flipped gz
        raise _corrupt(path, f"not a valid gzip file: {exc}") from None
    digest = hashlib.sha256(raw).hexdigest()
    if digest != spec.sha256:
        raise _corrupt(path, f"decompressed SHA-256 {digest[:12]}... != expected {spec.sha256[:12]}...")
    ndim = len(spec.shape)
    header = 4 + 4 * ndim
    magic = int.from_bytes(raw[:4], "big")
    dims = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    if magic != spec.magic or dims != spec.shape or len(raw) != header + int(np.prod(dims)):
        raise _corrupt(path, f"IDX header magic {magic:#010x} shape {dims}, expected {spec.magic:#010x} {spec.shape}")
    array = np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)
    array.flags.writeable = False
    return array


def _corrupt(path: str, reason: str) -> UsageError:
    if not downloads_allowed():  # no download would replace it ($CCHSWEEP_OFFLINE)
        return UsageError(f"MNIST file {path} is corrupt ({reason}); replace it with an intact copy")
    return UsageError(
        f"MNIST file {path} is corrupt ({reason}); delete it and run again to "
        "re-download it, or replace it with an intact copy"
    )
