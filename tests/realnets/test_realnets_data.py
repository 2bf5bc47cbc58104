"""Dataset readers, offline datasets and selection (dnc_interactive.realnets.data)."""

import gzip
import pickle
import random
import sys

import numpy as np
import pytest

from dnc_interactive.realnets import data as D


# ---------------------------------------------------------------------------- raw formats
def _write_idx_by_hand(path, array):
    """An independent IDX writer: magic 0x0000 0803 / 0801, big-endian dims, raw bytes."""
    head = bytes([0, 0, 8, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wb") as fh:
        fh.write(head + array.astype(np.uint8).tobytes())


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_read_idx_reads_hand_written_files(tmp_path, suffix):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(7, 28, 28), dtype=np.uint8)
    path = tmp_path / f"imgs{suffix}"
    _write_idx_by_hand(path, images)
    out = D.read_idx(path)
    assert out.shape == (7, 28, 28) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, images)


def test_write_idx_round_trips_int32(tmp_path):
    arr = np.arange(-6, 6, dtype=np.int32).reshape(3, 4)
    out = D.read_idx(D.write_idx(tmp_path / "a.idx", arr))
    np.testing.assert_array_equal(out, arr)


def test_read_idx_rejects_bad_files(tmp_path):
    bad = tmp_path / "bad"
    bad.write_bytes(b"\x01\x02\x03\x04rest")
    with pytest.raises(ValueError, match="not an IDX file"):
        D.read_idx(bad)
    short = tmp_path / "short"
    short.write_bytes(bytes([0, 0, 8, 1]) + (10).to_bytes(4, "big") + b"abc")
    with pytest.raises(ValueError, match="IDX header says"):
        D.read_idx(short)


def _mnist_files(directory, n_train=30, n_test=10, seed=0):
    """Tiny MNIST-format files: class c has a bright pixel row c (so classes differ)."""
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    out = {}
    for split, n, (img_name, lab_name) in (
        ("train", n_train, ("train-images-idx3-ubyte", "train-labels-idx1-ubyte")),
        ("test", n_test, ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")),
    ):
        labels = np.arange(n) % 10
        images = rng.integers(0, 30, size=(n, 28, 28)).astype(np.uint8)
        images[np.arange(n), labels, :] = 255
        _write_idx_by_hand(directory / (img_name + ".gz"), images)
        _write_idx_by_hand(directory / lab_name, labels.astype(np.uint8))
        out[split] = (images, labels)
    return out


def test_mnist_loader_reads_torchvision_layout(tmp_path):
    written = _mnist_files(tmp_path / "MNIST" / "raw")
    ds = D.load_dataset("mnist", "train", root=tmp_path)
    images, labels = written["train"]
    assert ds.x.shape == (30, 1, 28, 28) and ds.x.dtype == np.float32
    np.testing.assert_allclose(ds.x[:, 0], images / 255.0, rtol=0, atol=1e-7)
    np.testing.assert_array_equal(ds.y, labels)
    test = D.load_dataset("mnist", "test", root=tmp_path)
    assert len(test) == 10 and test.split == "test"


def test_fashion_mnist_loader_reads_flat_root(tmp_path):
    written = _mnist_files(tmp_path, n_train=20, seed=3)
    ds = D.load_dataset("fashion_mnist", root=tmp_path)
    np.testing.assert_array_equal(ds.y, written["train"][1])
    assert ds.input_shape == (1, 28, 28)


def _cifar_files(root, per_batch=6, seed=0):
    rng = np.random.default_rng(seed)
    d = root / "cifar-10-batches-py"
    d.mkdir(parents=True)
    batches = []
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        labels = rng.integers(0, 10, size=per_batch)
        images = rng.integers(0, 256, size=(per_batch, 3072), dtype=np.uint8)
        # an independent writer: the format of the CIFAR-10 python version
        with open(d / name, "wb") as fh:
            pickle.dump({b"data": images, b"labels": labels.tolist()}, fh)
        batches.append((images, labels))
    return batches


def test_cifar_loader_reads_pickle_batches(tmp_path):
    batches = _cifar_files(tmp_path)
    ds = D.load_dataset("cifar10", root=tmp_path)
    assert ds.x.shape == (30, 3, 32, 32)
    images = np.concatenate([b[0] for b in batches[:5]]).reshape(30, 3, 32, 32)
    np.testing.assert_allclose(ds.x, images / 255.0, atol=1e-7)
    np.testing.assert_array_equal(ds.y, np.concatenate([b[1] for b in batches[:5]]))
    test = D.load_dataset("cifar10", "test", root=tmp_path)
    np.testing.assert_array_equal(test.y, batches[5][1])


def test_write_cifar_batch_round_trips(tmp_path):
    imgs = np.random.default_rng(1).integers(0, 256, size=(4, 3, 32, 32), dtype=np.uint8)
    x, y = D.read_cifar_batch(D.write_cifar_batch(tmp_path / "b", imgs, [3, 1, 4, 1]))
    np.testing.assert_array_equal(x, imgs)
    assert y.tolist() == [3, 1, 4, 1]


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist", "cifar10"])
def test_missing_files_name_the_dataset_and_the_fix(tmp_path, name):
    with pytest.raises(D.DatasetUnavailableError) as err:
        D.load_dataset(name, root=tmp_path)
    msg = str(err.value)
    assert repr(name) in msg and str(tmp_path) in msg
    assert "download=True" in msg and "pip install torchvision" in msg and "manually" in msg
    assert isinstance(err.value, FileNotFoundError)


def test_download_without_torchvision_says_how_to_fix(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torchvision", None)  # import torchvision -> ImportError
    with pytest.raises(D.DatasetUnavailableError, match="pip install torchvision") as err:
        D.load_dataset("cifar10", root=tmp_path, download=True)
    assert "'cifar10'" in str(err.value)


# ---------------------------------------------------------------------------- offline datasets
def test_digits_is_bundled():
    ds = D.load_dataset("digits")
    from sklearn.datasets import load_digits  # the reader must agree with scikit-learn's

    bunch = load_digits()
    np.testing.assert_array_equal(ds.x.reshape(1797, 64) * 16, bunch.data)
    np.testing.assert_array_equal(ds.y, bunch.target)
    assert ds.x.shape == (1797, 1, 8, 8) and ds.x.min() >= 0 and ds.x.max() <= 1
    assert ds.class_counts()[1] == 182 and sum(ds.class_counts().values()) == 1797
    with pytest.raises(ValueError, match="no test split"):
        D.load_dataset("digits", "test")


def test_mnist1d_is_generated_locally_and_deterministically(tmp_path):
    # the generator seeds numpy's and Python's global random state; both must be restored
    legacy = np.random  # the legacy global state is what the generator touches
    legacy.seed(123)  # noqa: NPY002
    random.seed(5)
    before = legacy.get_state()[1].copy(), random.random()  # noqa: NPY002
    random.seed(5)
    legacy.seed(123)  # noqa: NPY002
    D._MNIST1D_CACHE.clear()
    a = D.mnist1d_arrays(200, root=tmp_path)
    assert np.array_equal(legacy.get_state()[1], before[0])  # noqa: NPY002
    assert random.random() == before[1]
    assert a["x"].shape == (160, 40) and a["x_test"].shape == (40, 40)
    assert set(np.unique(a["y"])) <= set(range(10))
    assert (tmp_path / "mnist1d_200_42.npz").is_file()
    D._MNIST1D_CACHE.clear()
    b = D.mnist1d_arrays(200, root=tmp_path)  # from the disk cache
    np.testing.assert_array_equal(a["x"], b["x"])
    ds = D.load_dataset("mnist1d", root=tmp_path, mnist1d_samples=200)
    assert ds.input_shape == (1, 40)


# ---------------------------------------------------------------------------- selection
def _toy(name="digits"):
    y = np.array([2, 0, 1, 2, 0, 2, 1, 0, 2, 2])
    x = np.arange(10, dtype=np.float32).reshape(10, 1, 1) * np.ones((1, 1, 3), np.float32)
    return D.Dataset(name, "train", x, y)


def test_select_relabels_in_given_order_and_is_class_ordered():
    x, y, sizes = D.select(_toy(), classes=(2, 0), samples_per_class=(4, 2), seed=0)
    assert sizes == (4, 2) and y.tolist() == [0, 0, 0, 0, 1, 1]
    originals = x[:, 0, 0].astype(int)
    assert set(originals[:4]) <= {0, 3, 5, 8, 9} and set(originals[4:]) <= {1, 4, 7}
    # another seed picks another subset of class 2, always of the right class
    x2, _, _ = D.select(_toy(), classes=(2, 0), samples_per_class=(4, 2), seed=3)
    assert set(x2[:4, 0, 0].astype(int)) <= {0, 3, 5, 8, 9}
    x3, _, _ = D.select(_toy(), classes=(2, 0), samples_per_class=(4, 2), seed=0)
    np.testing.assert_array_equal(x, x3)
    _, _, all_sizes = D.select(_toy(), classes=None, samples_per_class=None)
    assert all_sizes == (3, 2, 5)


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"classes": (0, 11)}, "class 11 is not in dataset 'digits'"),
        ({"classes": (0,)}, "at least 2 classes"),
        ({"classes": (0, 0)}, "appears twice"),
        ({"classes": (0, 3)}, "class 3 has no samples"),
        ({"classes": (0, 1), "samples_per_class": 3}, "only 2 samples"),
        ({"classes": (0, 1), "samples_per_class": (1, 1, 1)}, "3 entries but 2 classes"),
    ],
)
def test_select_errors_name_the_parameter(kwargs, fragment):
    with pytest.raises(ValueError, match="classes|samples_per_class") as err:
        D.select(_toy(), **kwargs)
    assert fragment in str(err.value)


def test_unknown_dataset_is_a_value_error():
    with pytest.raises(ValueError, match=r"dataset='imagenet' is not valid: expected one of"):
        D.load_dataset("imagenet")


def test_standardize_per_channel_and_reuses_stats():
    rng = np.random.default_rng(0)
    x = rng.normal(3.0, 2.0, size=(50, 2, 4, 4)).astype(np.float32)
    x[:, 1] = 7.0  # a constant channel stays finite
    z, (mean, std) = D.standardize(x)
    np.testing.assert_allclose(z[:, 0].mean(), 0, atol=1e-5)
    np.testing.assert_allclose(z[:, 0].std(), 1, atol=1e-4)
    assert np.all(z[:, 1] == 0)
    z2, _ = D.standardize(x[:5], (mean, std))
    np.testing.assert_allclose(z2, z[:5], atol=1e-6)
