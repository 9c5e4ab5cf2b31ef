"""MNIST-M as in the paper's Appendix C: binarized MNIST digits blended onto BSDS500 patches.

    I_MNISTM = alpha * I_MNIST + (1 - alpha) * I_BSDS

* I_MNIST: the digit binarized by `pixel > THRESHOLD` (127, the midpoint of uint8) to {0, 1}.
  The paper replicates it over RGB; since the backgrounds are made grey too, the three
  channels would be identical, so we keep one channel (784 inputs, like the teacher).
* I_BSDS: a uniformly placed 28x28 patch of a uniformly chosen BSDS500 image, converted to
  grey by ITU-R BT.601 luma (0.299 R + 0.587 G + 0.114 B) / 255, in [0, 1].
* Train digits take backgrounds from BSDS500 train+val images, test digits from its test
  images, so no background image is shared between the two splits.

The random draws come from a numpy Generator seeded with (seed, alpha, split) and are made
for the whole split before truncating to n_train / n_test, so a subset build is exactly the
first rows of the full one. A build is written once to `cache_dir` (temp file + rename, under
a file lock so concurrent trials build it once) and loaded from there afterwards.
"""

from __future__ import annotations

import io
import os
import struct
import sys
import time
import zipfile
from pathlib import Path
from typing import TypedDict, cast

import numpy as np
from filelock import FileLock

from cchsweep.data import bsds500
from cchsweep.data.mnist import Split, load_mnist

THRESHOLD = 127
LUMA_BT601 = (0.299, 0.587, 0.114)
PATCH = 28
CHUNK = 8192
BACKGROUNDS = {"train": ("train", "val"), "test": ("test",)}
# Bump when the construction changes so that stale caches are not reused.
CACHE_VERSION = 1


class MnistM(TypedDict):
    x_train: np.ndarray  # (N, 784) float32 in [0, 1]
    y_train: np.ndarray  # (N,) int64
    x_test: np.ndarray
    y_test: np.ndarray
    bg_train: np.ndarray  # (N,) int32: index into bg_names of each digit's background image
    bg_test: np.ndarray
    pos_train: np.ndarray  # (N, 2) int32: top-left (row, col) of the patch in that image
    pos_test: np.ndarray
    bg_names: np.ndarray  # (500,) str, "split/file.jpg"
    from_cache: bool


def binarize(digits: np.ndarray, threshold: int = THRESHOLD) -> np.ndarray:
    """uint8 digits to float32 {0, 1}: 1 where the pixel exceeds the threshold."""
    return (np.asarray(digits) > threshold).astype(np.float32)


def luma(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 RGB to (H, W) float32 BT.601 luma in [0, 1]."""
    weights = np.asarray(LUMA_BT601, dtype=np.float32) / np.float32(255.0)
    return np.clip(np.asarray(rgb, dtype=np.float32) @ weights, 0.0, 1.0)


def blend(digit: np.ndarray, patch: np.ndarray, alpha: float) -> np.ndarray:
    """alpha * digit + (1 - alpha) * patch in float32, clipped against rounding past [0, 1]."""
    _check_alpha(alpha)
    a = np.float32(alpha)
    mixed = a * np.asarray(digit, np.float32) + (np.float32(1.0) - a) * np.asarray(patch, np.float32)
    return np.clip(mixed, 0.0, 1.0, out=mixed)


def build_mnistm(
    data_dir: Path,
    alpha: float,
    seed: int,
    cache_dir: Path,
    n_train: int | None = None,
    n_test: int | None = None,
    *,
    allow_download: bool | None = None,
) -> MnistM:
    """MNIST-M for (alpha, seed), the first n_train / n_test digits (all when None), cached."""
    _check_alpha(alpha)
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, not {seed!r}")
    for name, n, full in (("n_train", n_train, 60000), ("n_test", n_test, 10000)):
        if n is not None and not 1 <= n <= full:
            raise ValueError(f"{name}={n} must lie between 1 and {full}")
    path = Path(cache_dir) / _cache_name(alpha, seed, n_train, n_test)
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock"):
        cached = _load(path)
        if cached is not None:
            return cached
        started = time.perf_counter()
        built = _build(Path(data_dir), alpha, int(seed), n_train, n_test, allow_download)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        with open(tmp, "wb") as fh:
            np.savez(fh, **{k: v for k, v in built.items() if isinstance(v, np.ndarray)})
        os.replace(tmp, path)
        print(
            f"MNIST-M alpha={alpha:g} seed={seed}: {len(built['y_train']):,}/{len(built['y_test']):,} digits "
            f"built in {time.perf_counter() - started:.1f} s, cached in {path.parent}",
            file=sys.stderr,
            flush=True,
        )
    return built


def _check_alpha(alpha: float) -> None:
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha={alpha} must lie in [0, 1]")


def _cache_name(alpha: float, seed: int, n_train: int | None, n_test: int | None) -> str:
    sizes = f"{n_train or 'all'}-{n_test or 'all'}"
    return f"mnistm-v{CACHE_VERSION}-alpha{float(alpha)!r}-seed{int(seed)}-n{sizes}.npz"


def _load(path: Path) -> MnistM | None:
    if not path.is_file():
        return None
    try:
        with np.load(path) as z:
            arrays = {key: z[key] for key in MnistM.__annotations__ if key != "from_cache"}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None  # unreadable (truncated, a bad CRC, not an npz): rebuild and overwrite
    return cast(MnistM, {**arrays, "from_cache": True})


def _rng(seed: int, alpha: float, split: str) -> np.random.Generator:
    # alpha's exact float bits enter the seed, so 0.2 and 0.2000001 draw differently but
    # 0.2 always draws the same.
    alpha_bits = struct.unpack("<Q", struct.pack("<d", float(alpha)))[0]
    return np.random.default_rng([seed, alpha_bits, ("train", "test").index(split)])


def _build(
    data_dir: Path, alpha: float, seed: int, n_train: int | None, n_test: int | None, allow_download: bool | None
) -> MnistM:
    names, images = load_bsds_luma(data_dir, allow_download=allow_download)
    out: dict[str, np.ndarray] = {"bg_names": np.asarray(names)}
    splits: tuple[tuple[Split, int | None], ...] = (("train", n_train), ("test", n_test))
    for split, n in splits:
        digits, labels = load_mnist(data_dir, split, allow_download=allow_download)
        pool = np.asarray([i for i, name in enumerate(names) if name.split("/", 1)[0] in BACKGROUNDS[split]])
        bg, pos = _draw(_rng(seed, alpha, split), pool, images, len(digits))
        n = len(digits) if n is None else n
        bg, pos = bg[:n], pos[:n]
        x = _extract(images, bg, pos)
        # Blended into the patch buffer in chunks: whole-split temporaries would cost ~1 GB.
        for start in range(0, n, CHUNK):
            rows = slice(start, min(start + CHUNK, n))
            x[rows] = blend(binarize(digits[rows]), x[rows], alpha)
        out[f"x_{split}"] = x.reshape(n, PATCH * PATCH)
        out[f"y_{split}"] = labels[:n]
        out[f"bg_{split}"] = bg
        out[f"pos_{split}"] = pos
    return cast(MnistM, {**out, "from_cache": False})


def _draw(
    rng: np.random.Generator, pool: np.ndarray, images: list[np.ndarray], n: int
) -> tuple[np.ndarray, np.ndarray]:
    """Background image index and patch corner for each of n digits."""
    bg = pool[rng.integers(0, len(pool), size=n)].astype(np.int32)
    shapes = np.asarray([im.shape for im in images])[bg]
    rows = rng.integers(0, shapes[:, 0] - PATCH + 1)
    cols = rng.integers(0, shapes[:, 1] - PATCH + 1)
    return bg, np.stack([rows, cols], axis=1).astype(np.int32)


def _extract(images: list[np.ndarray], bg: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """(n, 28, 28) patches, gathered one source image at a time from a strided window view."""
    patches = np.empty((len(bg), PATCH, PATCH), dtype=np.float32)
    for k in np.unique(bg):
        sel = np.flatnonzero(bg == k)
        windows = np.lib.stride_tricks.sliding_window_view(images[k], (PATCH, PATCH))
        patches[sel] = windows[pos[sel, 0], pos[sel, 1]]
    return patches


def load_bsds_luma(data_dir: Path, *, allow_download: bool | None = None) -> tuple[list[str], list[np.ndarray]]:
    """All BSDS500 images as grey float32 arrays, named "split/file.jpg", in train, val, test
    order and sorted by name within a split, verified (and downloaded if missing and allowed)."""
    from PIL import Image

    names, images = [], []
    for name, data in bsds500.load_images(data_dir, allow_download=allow_download):
        with Image.open(io.BytesIO(data)) as im:  # verified bytes: decoding cannot meet a damaged file
            rgb = np.asarray(im.convert("RGB"))
        names.append(name)
        images.append(luma(rgb))
    return names, images
