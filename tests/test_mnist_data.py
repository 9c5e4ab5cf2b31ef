"""MNIST reading and verification, the Appendix C MNIST-M construction, and the teacher blur.

Reads the real offline data in ../shared/data (relative to the project root); never downloads.
"""

import gzip
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from cchsweep.data import mnistm as mnistm_module
from cchsweep.data.blur import gaussian_blur, gaussian_kernel1d
from cchsweep.data.mnist import FILES, load_mnist, read_idx
from cchsweep.data.mnistm import binarize, blend, build_mnistm, load_bsds_luma, luma
from cchsweep.data.paths import default_data_dir, resolve_data_dir
from cchsweep.errors import UsageError

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
N_TRAIN, N_TEST = 2000, 500
ALPHA = 0.2
GAMMAS = (0.0, 0.5, 1.5, 2.5, 3.5)


@pytest.fixture(autouse=True)
def _no_network(monkeypatch):
    """Any download attempt fails the test instead of reaching the network."""
    def refuse(*args, **kwargs):
        raise AssertionError(f"tests must not download: {args}")
    import pooch
    monkeypatch.setattr(pooch, "retrieve", refuse)


@pytest.fixture(scope="module")
def mnistm_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("mnistm")


@pytest.fixture(scope="module")
def small_mnistm(mnistm_cache):
    return build_mnistm(DATA, ALPHA, 0, mnistm_cache, n_train=N_TRAIN, n_test=N_TEST,
                        allow_download=False)


def _copy_mnist(dst_root: Path) -> Path:
    dst = dst_root / "mnist"
    dst.mkdir(parents=True)
    for spec in FILES.values():
        shutil.copyfile(DATA / "mnist" / spec.filename, dst / spec.filename)
    return dst


# --- data directory -----------------------------------------------------------------------------

def test_data_dir_resolution_order(monkeypatch, tmp_path):
    monkeypatch.setenv("CCHSWEEP_DATA", str(DATA))
    assert resolve_data_dir(str(tmp_path)) == tmp_path
    assert resolve_data_dir(None) == DATA
    monkeypatch.delenv("CCHSWEEP_DATA")
    assert resolve_data_dir(None) == default_data_dir()
    assert "cchsweep" in str(default_data_dir())


def test_missing_explicit_data_dir_is_a_usage_error(monkeypatch, tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(UsageError, match=r"nope \(from --data-dir\) does not exist"):
        resolve_data_dir(str(missing))
    monkeypatch.setenv("CCHSWEEP_DATA", str(missing))
    with pytest.raises(UsageError, match=r"nope \(from \$CCHSWEEP_DATA\) does not exist"):
        resolve_data_dir(None)


# --- MNIST --------------------------------------------------------------------------------------

def test_mnist_shapes_labels_and_counts():
    x_train, y_train = load_mnist(DATA, "train", allow_download=False)
    x_test, y_test = load_mnist(DATA, "test", allow_download=False)
    assert x_train.shape == (60000, 28, 28) and x_test.shape == (10000, 28, 28)
    assert x_train.dtype == np.uint8 and y_train.dtype == np.int64 and y_train.shape == (60000,)
    assert y_train[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert y_test[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    assert np.bincount(y_train).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert x_train.max() == 255 and x_train.min() == 0
    x_train[0, 0, 0] = 1  # callers get their own writable copy
    assert load_mnist(DATA, "train", allow_download=False)[0][0, 0, 0] == 0


def test_truncated_gzip_is_rejected(tmp_path, monkeypatch):
    spec = FILES["train", "labels"]
    bad = tmp_path / spec.filename
    bad.write_bytes((DATA / "mnist" / spec.filename).read_bytes()[:-100])
    with pytest.raises(UsageError, match=rf"{spec.filename} is corrupt \(not a valid gzip.*\); replace it with an intact copy$"):
        read_idx(bad, spec)  # offline (the tests' $CCHSWEEP_OFFLINE=1): no download would replace it
    monkeypatch.setenv("CCHSWEEP_OFFLINE", "0")
    with pytest.raises(UsageError, match=rf"{spec.filename} is corrupt \(not a valid gzip.*delete it and run again"):
        read_idx(bad, spec)


def test_bit_flipped_file_is_rejected(tmp_path):
    mnist_dir = _copy_mnist(tmp_path)
    spec = FILES["test", "labels"]
    data = bytearray((mnist_dir / spec.filename).read_bytes())
    data[len(data) // 2] ^= 0x10
    (mnist_dir / spec.filename).write_bytes(bytes(data))
    with pytest.raises(UsageError, match=rf"{spec.filename} is corrupt.*replace it with an intact copy"):
        load_mnist(tmp_path, "test", allow_download=False)
    load_mnist(tmp_path, "train", allow_download=False)  # the intact split still loads


def test_valid_gzip_with_altered_content_fails_the_checksum(tmp_path):
    spec = FILES["test", "labels"]
    raw = bytearray(gzip.decompress((DATA / "mnist" / spec.filename).read_bytes()))
    raw[8] = (raw[8] + 1) % 10  # a different but plausible first label
    bad = tmp_path / spec.filename
    bad.write_bytes(gzip.compress(bytes(raw)))
    with pytest.raises(UsageError, match=r"is corrupt \(decompressed SHA-256 .* != expected"):
        read_idx(bad, spec)


def test_recompressed_copy_passes(tmp_path):
    # Content, not gz bytes, is what is verified: a different compression level still reads.
    spec = FILES["test", "labels"]
    raw = gzip.decompress((DATA / "mnist" / spec.filename).read_bytes())
    copy = tmp_path / spec.filename
    copy.write_bytes(gzip.compress(raw, compresslevel=1))
    assert read_idx(copy, spec)[:3].tolist() == [7, 2, 1]


def test_missing_mnist_offline_names_the_files(tmp_path, monkeypatch):
    with pytest.raises(UsageError) as info:
        load_mnist(tmp_path, "train", allow_download=False)
    message = str(info.value)
    assert "\n" not in message and str(tmp_path / "mnist") in message
    for spec in FILES.values():
        assert spec.filename in message
    monkeypatch.setenv("CCHSWEEP_OFFLINE", "1")
    with pytest.raises(UsageError, match="train-images-idx3-ubyte.gz"):
        load_mnist(tmp_path, "train")


def test_failed_download_is_a_usage_error(tmp_path, monkeypatch):
    def unreachable(url, **kwargs):
        raise ConnectionError(f"cannot reach {url}")

    import pooch
    monkeypatch.setattr(pooch, "retrieve", unreachable)
    with pytest.raises(UsageError, match=r"could not download train-images-idx3-ubyte.gz .*cannot reach"):
        load_mnist(tmp_path, "train", allow_download=True)


# --- MNIST-M ------------------------------------------------------------------------------------

def test_blend_is_the_appendix_c_formula():
    digit = binarize(np.array([0, 127, 128, 255], dtype=np.uint8))
    assert digit.tolist() == [0.0, 0.0, 1.0, 1.0] and digit.dtype == np.float32
    patch = np.array([0.5, 1.0, 0.5, 0.0], dtype=np.float32)
    assert np.array_equal(blend(digit, patch, 1.0), digit)
    assert np.array_equal(blend(digit, patch, 0.0), patch)
    assert blend(digit, patch, 0.5).tolist() == [0.25, 0.5, 0.75, 0.5]
    expected = 0.2 * digit.astype(np.float64) + 0.8 * patch.astype(np.float64)
    np.testing.assert_allclose(blend(digit, patch, 0.2), expected, rtol=0, atol=1e-7)
    with pytest.raises(ValueError, match=r"alpha=1.5 must lie in \[0, 1\]"):
        blend(digit, patch, 1.5)


def test_luma_is_bt601():
    rgb = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 255]]], dtype=np.uint8)
    np.testing.assert_allclose(luma(rgb)[0], [0.299, 0.587, 0.114, 1.0], atol=1e-6)


def test_mnistm_shapes_range_and_labels(small_mnistm):
    m = small_mnistm
    assert m["x_train"].shape == (N_TRAIN, 784) and m["x_test"].shape == (N_TEST, 784)
    assert m["x_train"].dtype == np.float32
    for x in (m["x_train"], m["x_test"]):
        assert x.min() >= 0.0 and x.max() <= 1.0
    _, y_train = load_mnist(DATA, "train", allow_download=False)
    _, y_test = load_mnist(DATA, "test", allow_download=False)
    assert np.array_equal(m["y_train"], y_train[:N_TRAIN]) and np.array_equal(m["y_test"], y_test[:N_TEST])
    assert len(m["bg_names"]) == 500


def test_mnistm_pixels_are_the_blend_of_their_recorded_sources(small_mnistm):
    from PIL import Image

    m = small_mnistm
    digits, _ = load_mnist(DATA, "train", allow_download=False)
    for i in (0, 1, N_TRAIN - 1):
        name = str(m["bg_names"][m["bg_train"][i]])
        with Image.open(DATA / "bsds500" / name) as im:
            grey = luma(np.asarray(im.convert("RGB")))
        r, c = m["pos_train"][i]
        patch = grey[r:r + 28, c:c + 28]
        assert patch.shape == (28, 28)
        expected = blend(binarize(digits[i]), patch, ALPHA).reshape(784)
        assert np.array_equal(m["x_train"][i], expected)


def test_mnistm_train_and_test_backgrounds_are_disjoint(small_mnistm):
    m = small_mnistm
    train_images, test_images = set(m["bg_train"].tolist()), set(m["bg_test"].tolist())
    assert not train_images & test_images
    assert all(str(m["bg_names"][k]).split("/")[0] in ("train", "val") for k in train_images)
    assert all(str(m["bg_names"][k]).startswith("test/") for k in test_images)
    assert len(train_images) > 250 and len(test_images) > 150  # drawn from the whole pools


def test_mnistm_is_deterministic_per_seed_and_alpha(small_mnistm, tmp_path):
    again = build_mnistm(DATA, ALPHA, 0, tmp_path / "a", n_train=N_TRAIN, n_test=N_TEST)
    assert not again["from_cache"]
    for key in ("x_train", "x_test", "bg_train", "pos_train", "bg_test", "pos_test"):
        assert np.array_equal(again[key], small_mnistm[key]), key
    other = build_mnistm(DATA, ALPHA, 1, tmp_path / "b", n_train=N_TRAIN, n_test=N_TEST)
    assert not np.array_equal(other["x_train"], small_mnistm["x_train"])
    assert not np.array_equal(other["bg_test"], small_mnistm["bg_test"])
    # A subset is exactly the first rows of a bigger build.
    prefix = build_mnistm(DATA, ALPHA, 0, tmp_path / "c", n_train=100, n_test=10)
    assert np.array_equal(prefix["x_train"], small_mnistm["x_train"][:100])
    assert np.array_equal(prefix["x_test"], small_mnistm["x_test"][:10])


def test_mnistm_second_call_loads_the_cache(small_mnistm, mnistm_cache, monkeypatch):
    assert not small_mnistm["from_cache"]
    (path,) = mnistm_cache.glob("*.npz")
    assert "alpha0.2-seed0" in path.name and not list(mnistm_cache.glob("*.tmp"))
    mtime = path.stat().st_mtime_ns

    def no_rebuild(*args, **kwargs):
        raise AssertionError("rebuilt although cached")

    monkeypatch.setattr(mnistm_module, "_build", no_rebuild)
    cached = build_mnistm(DATA, ALPHA, 0, mnistm_cache, n_train=N_TRAIN, n_test=N_TEST)
    assert cached["from_cache"] and path.stat().st_mtime_ns == mtime
    for key in ("x_train", "y_train", "x_test", "y_test", "bg_train", "pos_test", "bg_names"):
        assert np.array_equal(cached[key], small_mnistm[key]), key


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_a_damaged_mnistm_cache_file_is_rebuilt(tmp_path, damage):
    """A truncated cache file (not a zip any more) or a flipped byte (a bad CRC) crashed every later run
    with zipfile.BadZipFile; it is rebuilt instead, to the same images."""
    cache = tmp_path / "c"
    first = build_mnistm(DATA, ALPHA, 0, cache, n_train=N_TRAIN, n_test=N_TEST)
    (path,) = cache.glob("*.npz")
    data = bytearray(path.read_bytes())
    if damage == "truncate":
        del data[len(data) // 3 :]
    else:
        data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    again = build_mnistm(DATA, ALPHA, 0, cache, n_train=N_TRAIN, n_test=N_TEST)
    assert not again["from_cache"]
    assert np.array_equal(again["x_train"], first["x_train"]) and np.array_equal(again["x_test"], first["x_test"])
    assert build_mnistm(DATA, ALPHA, 0, cache, n_train=N_TRAIN, n_test=N_TEST)["from_cache"]  # repaired


def test_missing_bsds_names_what_to_provide(tmp_path):
    _copy_mnist(tmp_path)
    with pytest.raises(UsageError, match=r"BSDS500 images not found: expected bsds500/\{train,val,test\}"
                                          r"/\*.jpg, or BSR_bsds500.tgz in .*download"):
        build_mnistm(tmp_path, ALPHA, 0, tmp_path / "cache", n_train=10, n_test=10)


def test_an_empty_or_partial_bsds_folder_names_what_is_missing(tmp_path, monkeypatch):
    """An empty bsds500/ was not a local copy: with downloads allowed, all 500 images were downloaded, thrown
    away (the folder was in the way) and the run died on an AssertionError. It is the copy, and its first
    missing image is named, downloads allowed or not; a file of that name is refused."""
    _copy_mnist(tmp_path)
    (tmp_path / "bsds500").mkdir()
    monkeypatch.setenv("CCHSWEEP_OFFLINE", "0")
    monkeypatch.setenv("CCHSWEEP_BSDS500_URLS", "http://127.0.0.1:9/never-asked/")
    with pytest.raises(UsageError, match=r"BSDS500 image train/\S+\.jpg is missing from .*bsds500; restore it"):
        build_mnistm(tmp_path, ALPHA, 0, tmp_path / "cache", n_train=10, n_test=10)
    (tmp_path / "bsds500").rmdir()
    (tmp_path / "bsds500").write_text("not images")
    with pytest.raises(UsageError, match=r"bsds500 is a file, not the BSDS500 image folder"):
        build_mnistm(tmp_path, ALPHA, 0, tmp_path / "cache", n_train=10, n_test=10)


def test_bsds_from_the_canonical_archive_matches_the_directory(tmp_path):
    with tarfile.open(tmp_path / "BSR_bsds500.tgz", "w:gz", compresslevel=1) as tar:
        for split in ("train", "val", "test"):
            tar.add(DATA / "bsds500" / split, arcname=f"BSR/BSDS500/data/images/{split}")
    names_dir, images_dir = load_bsds_luma(DATA)
    names_tgz, images_tgz = load_bsds_luma(tmp_path)
    assert names_tgz == names_dir and len(names_dir) == 500
    assert all(np.array_equal(a, b) for a, b in zip(images_dir, images_tgz))


# --- blur ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def digits() -> torch.Tensor:
    x, _ = load_mnist(DATA, "test", allow_download=False)
    return torch.from_numpy(x[:256].reshape(256, 784)).float() / 255.0


def _reference_blur(image: np.ndarray, gamma: float) -> np.ndarray:
    """Direct 2-D correlation with the outer-product kernel on numpy's 'symmetric' padding."""
    w = gaussian_kernel1d(gamma, dtype=torch.float64).numpy()
    r = (len(w) - 1) // 2
    padded = np.pad(image.astype(np.float64), r, mode="symmetric")
    windows = np.lib.stride_tricks.sliding_window_view(padded, (len(w), len(w)))
    return np.einsum("ijab,a,b->ij", windows, w, w)


def test_gamma_zero_is_the_identity(digits):
    assert torch.equal(gaussian_blur(digits, 0.0), digits)
    assert torch.equal(gaussian_blur(digits.view(-1, 28, 28), 0), digits.view(-1, 28, 28))


def test_kernel_radius_and_normalization():
    for gamma, length in ((0.5, 5), (1.5, 11), (3.5, 23)):
        k = gaussian_kernel1d(gamma)
        assert k.numel() == length and abs(k.sum().item() - 1) < 1e-6
        assert torch.equal(k, k.flip(0))


@pytest.mark.parametrize("gamma", [0.5, 1.5, 3.5, 12.0])
def test_blur_matches_a_direct_reference(digits, gamma):
    image = digits[3].view(28, 28).double()
    ours = gaussian_blur(image.unsqueeze(0), gamma)[0]
    np.testing.assert_allclose(ours.numpy(), _reference_blur(image.numpy(), gamma), atol=1e-12)


def test_flat_and_square_layouts_agree(digits):
    flat = gaussian_blur(digits, 1.5)
    square = gaussian_blur(digits.view(-1, 28, 28), 1.5)
    assert flat.shape == digits.shape and flat.dtype == digits.dtype
    assert torch.equal(flat.view(-1, 28, 28), square)


@pytest.mark.parametrize("gamma", [0.5, 1.5, 2.5, 3.5, 12.0])
def test_reflect_padding_preserves_mass_exactly(digits, gamma):
    # Digits touch the border after blurring and a wide kernel reaches past the image:
    # the symmetric padding keeps every image's total intensity anyway.
    noise = torch.rand(8, 784, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    for x in (digits.double(), noise):
        torch.testing.assert_close(gaussian_blur(x, gamma).sum(1), x.sum(1), rtol=1e-12, atol=1e-9)


def test_zero_padding_preserves_mass_only_in_the_interior():
    x = torch.zeros(2, 28, 28, dtype=torch.float64)
    x[0, 12:16, 12:16] = 1.0  # 12 pixels from the border > radius ceil(3 * 1.5) = 5
    x[1, 0:4, 0:4] = 1.0  # in the corner
    out = gaussian_blur(x, 1.5, padding="zeros")
    assert out[0].sum().item() == pytest.approx(16.0, rel=1e-12)
    assert out[1].sum().item() < 16.0 * 0.8


def test_high_frequency_energy_falls_with_gamma(digits):
    # The spectrum of the mirrored 56x56 extension: that is the periodic signal the symmetric
    # padding blurs, so it has no artificial wrap-around edges (a plain 28x28 FFT does).
    def mirrored(images: torch.Tensor) -> torch.Tensor:
        images = torch.cat([images, images.flip(-1)], -1)
        return torch.cat([images, images.flip(-2)], -2)

    f = torch.fft.fftfreq(56).abs()
    high = (f[:, None] > 0.2) | (f[None, :] > 0.2)  # cycles per pixel
    energies = []
    for gamma in GAMMAS:
        blurred = gaussian_blur(digits.double(), gamma).view(-1, 28, 28)
        energies.append((torch.fft.fft2(mirrored(blurred)).abs() ** 2)[:, high].sum().item())
    assert all(a > 2 * b for a, b in zip(energies, energies[1:])), energies
    assert energies[-1] < 1e-6 * energies[0]


def test_bad_blur_arguments():
    with pytest.raises(ValueError, match="gamma=-1"):
        gaussian_blur(torch.zeros(1, 784), -1.0)
    with pytest.raises(TypeError, match="floating-point"):
        gaussian_blur(torch.zeros(1, 784, dtype=torch.uint8), 1.0)


@pytest.mark.gpu  # opt-in: pytest -m gpu on a machine with CUDA
def test_blur_on_cuda_matches_cpu(digits):
    gpu = gaussian_blur(digits.cuda(), 2.5)
    assert gpu.device.type == "cuda"
    torch.testing.assert_close(gpu.cpu(), gaussian_blur(digits, 2.5), rtol=1e-5, atol=1e-6)
