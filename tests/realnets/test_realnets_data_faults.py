"""Corrupt, truncated and crafted dataset files (dnc_interactive.realnets.data): every one is
named with the fix (DatasetFileError, exit 2 on the command line), none runs code."""

from __future__ import annotations

import gzip
import io
import os
import pickle
import struct

import numpy as np
import pytest

from dnc_interactive.cli import main
from dnc_interactive.realnets import data as D
from dnc_interactive.realnets.data import digits as digits_reader

TRAIN_IMG, TRAIN_LAB = "train-images-idx3-ubyte", "train-labels-idx1-ubyte"
TEST_IMG, TEST_LAB = "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"


# ---------------------------------------------------------------------------- writers
def _idx(array: np.ndarray, code: int = 8) -> bytes:
    head = bytes([0, 0, code, array.ndim]) + b"".join(struct.pack(">i", n) for n in array.shape)
    return head + array.astype(array.dtype.newbyteorder(">")).tobytes()


def _mnist(root, n=20, seed=0):
    """Valid MNIST files under root/MNIST/raw; returns that directory."""
    rng = np.random.default_rng(seed)
    d = root / "MNIST" / "raw"
    d.mkdir(parents=True)
    for img, lab, k in ((TRAIN_IMG, TRAIN_LAB, n), (TEST_IMG, TEST_LAB, n // 2)):
        (d / img).write_bytes(_idx(rng.integers(0, 256, (k, 28, 28)).astype(np.uint8)))
        (d / lab).write_bytes(_idx((np.arange(k) % 10).astype(np.uint8)))
    return d


def _batch(n=4, seed=0, labels=None, data=None) -> dict:
    rng = np.random.default_rng(seed)
    return {
        b"batch_label": b"test",
        b"labels": list(range(n)) if labels is None else labels,
        b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8) if data is None else data,
        b"filenames": [b"a.png"] * n,
    }


def _cifar(root, protocol=2):
    """Valid CIFAR-10 batches under root/cifar-10-batches-py; returns that directory."""
    d = root / "cifar-10-batches-py"
    d.mkdir(parents=True)
    for i, name in enumerate([*(f"data_batch_{k}" for k in range(1, 6)), "test_batch"]):
        (d / name).write_bytes(pickle.dumps(_batch(seed=i), protocol=protocol))
    return d


class RunsCode:
    """Unpickling this with plain pickle calls exec, which writes the marker file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').write('code ran')",))


class ShortArray:
    """Pickles like a numpy array of shape (4, 3072) whose data is only 5 bytes long."""

    def __reduce__(self):
        from numpy._core.multiarray import _reconstruct

        state = (1, (4, 3072), np.dtype("u1"), False, b"short")
        return (_reconstruct, (np.ndarray, (0,), b"b"), state)


class CallsSystem:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


# ---------------------------------------------------------------------------- IDX files
def _good_gz(tmp_path):
    return gzip.compress(_idx(np.zeros((20, 28, 28), np.uint8)))


IDX_CASES = {
    "empty": (lambda t: b"", "not an IDX file"),
    "magic only": (lambda t: bytes([0, 0, 8, 3]), "truncated: its IDX header ends"),
    "half a header": (lambda t: bytes([0, 0, 8, 3, 0, 0]), "truncated: its IDX header ends"),
    "bad magic": (lambda t: b"\x89PNG\r\n\x1a\n" + bytes(100), "not an IDX file"),
    "unknown type code": (lambda t: bytes([0, 0, 0x42, 1, 0, 0, 0, 1, 7]), "not an IDX file"),
    "truncated data": (
        lambda t: _idx(np.zeros((20, 28, 28), np.uint8))[:-100],
        r"is truncated: IDX header says \(20, 28, 28\)",
    ),
    "trailing data": (
        lambda t: _idx(np.zeros((20, 28, 28), np.uint8)) + b"x",
        "has trailing data",
    ),
    "negative dimension": (
        lambda t: bytes([0, 0, 8, 3]) + struct.pack(">3i", 20, -28, 28),
        "broken IDX header",
    ),
    "absurd dimensions": (
        lambda t: bytes([0, 0, 8, 3]) + struct.pack(">3i", 2**31 - 1, 2**31 - 1, 2**31 - 1),
        "broken IDX header",
    ),
    "wrong image shape": (
        lambda t: _idx(np.zeros((20, 27, 28), np.uint8)),
        r"expected uint8 images \(n, 28, 28\)",
    ),
    "float images": (
        lambda t: _idx(np.zeros((20, 28, 28), np.float32), code=0x0D),
        r"expected uint8 images",
    ),
}


@pytest.mark.parametrize("case", list(IDX_CASES))
def test_broken_idx_images_name_the_file_and_the_fix(tmp_path, case):
    d = _mnist(tmp_path)
    make, fragment = IDX_CASES[case]
    (d / TRAIN_IMG).write_bytes(make(tmp_path))
    with pytest.raises(D.DatasetFileError, match=fragment) as err:
        D.load_dataset("mnist", root=tmp_path)
    msg = str(err.value)
    assert msg.startswith(str(d / TRAIN_IMG) + ": ")
    assert "Fix: delete" in msg and "--download" in msg and "ossci-datasets" in msg
    assert isinstance(err.value, ValueError) and err.value.path == d / TRAIN_IMG


GZ_CASES = {
    "not gzip": (lambda good: _idx(np.zeros((20, 28, 28), np.uint8)), "BadGzipFile"),
    "truncated gzip": (lambda good: good[: len(good) // 2], "EOFError"),
    "damaged gzip": (
        lambda good: good[:20] + bytes(b ^ 0xFF for b in good[20:40]) + good[40:],
        "cannot be read",
    ),
    "bad checksum": (lambda good: good[:-8] + bytes(8), "cannot be read"),
}


@pytest.mark.parametrize("case", list(GZ_CASES))
def test_broken_gzip_files_name_the_file_and_the_fix(tmp_path, case):
    d = _mnist(tmp_path)
    (d / TRAIN_IMG).unlink()
    make, fragment = GZ_CASES[case]
    target = d / (TRAIN_IMG + ".gz")
    target.write_bytes(make(_good_gz(tmp_path)))
    with pytest.raises(D.DatasetFileError, match=fragment) as err:
        D.load_dataset("mnist", root=tmp_path)
    assert str(err.value).startswith(f"{target}: ")
    assert "damaged or truncated" in str(err.value) or "IDX" in str(err.value)
    assert "Fix:" in str(err.value)


def test_broken_idx_labels(tmp_path):
    d = _mnist(tmp_path)
    (d / TRAIN_LAB).write_bytes(_idx(np.arange(19, dtype=np.uint8) % 10))  # 19 labels, 20 images
    with pytest.raises(D.DatasetFileError, match="holds 19 labels but .* 20 images"):
        D.load_dataset("mnist", root=tmp_path)
    (d / TRAIN_LAB).write_bytes(_idx(np.full(20, 200, dtype=np.uint8)))
    with pytest.raises(D.DatasetFileError, match=r"labels outside 0\.\.9"):
        D.load_dataset("mnist", root=tmp_path)
    (d / TRAIN_LAB).write_bytes(_idx(np.zeros((20, 2), np.uint8)))
    with pytest.raises(D.DatasetFileError, match="expected integer labels"):
        D.load_dataset("mnist", root=tmp_path)


def test_idx_reader_does_not_read_past_the_header_size(tmp_path, monkeypatch):
    # a gzip bomb behind a small header: only header-size + 1 bytes are decompressed
    path = tmp_path / "bomb.gz"
    with gzip.open(path, "wb") as fh:
        fh.write(bytes([0, 0, 8, 1]) + struct.pack(">i", 10))
        fh.write(bytes(50_000_000))  # 50 MB of zeros, ~50 kB compressed
    reads = []
    real_open = gzip.open

    def spy(*a, **k):
        fh = real_open(*a, **k)
        orig = fh.read
        fh.read = lambda n=-1: reads.append(n) or orig(n)
        return fh

    monkeypatch.setattr(gzip, "open", spy)
    with pytest.raises(D.DatasetFileError, match="has trailing data"):
        D.read_idx(path)
    assert -1 not in reads and max(reads) == 11


# ---------------------------------------------------------------------------- CIFAR-10 files
def test_a_crafted_cifar_batch_is_refused_and_runs_nothing(tmp_path):
    marker = tmp_path / "marker"
    evil = pickle.dumps(_batch(data=RunsCode(marker)), protocol=2)
    # the file really is malicious: plain pickle runs its code
    pickle.loads(evil)
    assert marker.read_text() == "code ran"
    marker.unlink()

    d = _cifar(tmp_path)
    (d / "data_batch_3").write_bytes(evil)
    with pytest.raises(D.DatasetFileError) as err:
        D.load_dataset("cifar10", root=tmp_path)
    msg = str(err.value)
    assert msg.startswith(f"{d / 'data_batch_3'}: refused to unpickle it: it asks for the")
    assert ".exec, which a CIFAR-10 batch never holds" in msg and "could run code" in msg
    assert "Fix: delete" in msg and "cs.toronto.edu" in msg
    assert not marker.exists()


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_os_system_and_other_callables_are_refused(tmp_path, protocol):
    marker = tmp_path / "marker"
    for payload in (CallsSystem(marker), RunsCode(marker)):
        path = tmp_path / "batch"
        path.write_bytes(pickle.dumps(_batch(labels=payload), protocol=protocol))
        with pytest.raises(D.DatasetFileError, match="refused to unpickle"):
            D.read_cifar_batch(path)
    assert not marker.exists()


def _pickle_with(obj, protocol=2):
    return pickle.dumps(obj, protocol=protocol)


CIFAR_CASES = {
    "empty": (lambda: b"", "not a readable CIFAR-10 batch.*EOFError"),
    "truncated": (lambda: _pickle_with(_batch())[:5000], "not a readable CIFAR-10 batch"),
    "random bytes": (lambda: np.random.default_rng(0).bytes(4000), "CIFAR-10 batch"),
    "a list": (lambda: _pickle_with([1, 2, 3]), r"a pickled list, not a dict"),
    "no data": (lambda: _pickle_with({b"labels": [1]}), "no 'data'/'labels'"),
    "float data": (
        lambda: _pickle_with(_batch(data=np.zeros((4, 3072), np.float64))),
        "'data' is not a uint8 array",
    ),
    "object array": (
        lambda: _pickle_with(_batch(data=np.array([b"x"] * 4, dtype=object))),
        "refused to unpickle.*numpy dtype 'O8'",
    ),
    "structured dtype": (
        lambda: _pickle_with(_batch(data=np.zeros(4, dtype=[("a", "u1"), ("b", "u1")]))),
        "refused to unpickle",
    ),
    "wrong shape": (
        lambda: _pickle_with(_batch(data=np.zeros((4, 100), np.uint8))),
        r"'data' has shape \(4, 100\)",
    ),
    "label count": (
        lambda: _pickle_with(_batch(labels=[1, 2, 3])),
        "not a list of 4 integer labels",
    ),
    "label range": (lambda: _pickle_with(_batch(labels=[0, 1, 2, 10])), r"outside 0\.\.9"),
    "string labels": (lambda: _pickle_with(_batch(labels=["a"] * 4)), "integer labels"),
    "array data too short": (
        lambda: _pickle_with(_batch(data=ShortArray())),
        r"refused to unpickle.*shape \(4, 3072\) and dtype uint8 with 5 bytes",
    ),
}


@pytest.mark.parametrize("case", list(CIFAR_CASES))
def test_broken_cifar_batches_name_the_file_and_the_fix(tmp_path, case):
    d = _cifar(tmp_path)
    make, fragment = CIFAR_CASES[case]
    (d / "data_batch_2").write_bytes(make())
    with pytest.raises(D.DatasetFileError, match=fragment) as err:
        D.load_dataset("cifar10", root=tmp_path)
    msg = str(err.value)
    assert msg.startswith(f"{d / 'data_batch_2'}: ")
    assert "Fix: delete" in msg and "--download" in msg


@pytest.mark.parametrize("protocol", [0, 1, 2, 3, 4, 5])
def test_the_restricted_reader_accepts_every_pickle_protocol(tmp_path, protocol):
    rng = np.random.default_rng(protocol)
    images = rng.integers(0, 256, (3, 3072), dtype=np.uint8)
    variants = [
        [7, 0, 9],
        np.array([7, 0, 9], dtype=">i4"),  # big-endian label array
        np.array([7, 0, 9], dtype=np.int64),
        [np.int64(7), np.int64(0), np.int64(9)],  # numpy scalars
    ]
    for labels in variants:
        path = tmp_path / f"b{protocol}"
        path.write_bytes(pickle.dumps({b"data": images, b"labels": labels}, protocol=protocol))
        x, y = D.read_cifar_batch(path)
        np.testing.assert_array_equal(x, images.reshape(3, 3, 32, 32))
        assert y.dtype == np.int64 and y.tolist() == [7, 0, 9]
    # str keys (a batch re-saved by Python 3) and Fortran-ordered data
    path = tmp_path / "f"
    path.write_bytes(pickle.dumps({"data": np.asfortranarray(images), "labels": [1, 2, 3]}))
    x, _ = D.read_cifar_batch(path)
    np.testing.assert_array_equal(x.reshape(3, 3072), images)


def test_the_reader_uses_no_plain_pickle_load(tmp_path, monkeypatch):
    _cifar(tmp_path)
    monkeypatch.setattr(pickle, "load", lambda *a, **k: pytest.fail("plain pickle.load used"))
    monkeypatch.setattr(pickle, "loads", lambda *a, **k: pytest.fail("plain pickle.loads used"))
    assert len(D.load_dataset("cifar10", root=tmp_path)) == 20


def test_a_python2_style_batch_reads(tmp_path):
    # the original CIFAR-10 files: protocol 2, numpy.core.multiarray._reconstruct, str bytes
    images = np.arange(2 * 3072, dtype=np.uint64).astype(np.uint8).reshape(2, 3072)
    buf = io.BytesIO()
    pickle.dump({b"data": images, b"labels": [3, 4]}, buf, protocol=2)
    raw = buf.getvalue().replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    path = tmp_path / "py2"
    path.write_bytes(raw)
    x, y = D.read_cifar_batch(path)
    np.testing.assert_array_equal(x.reshape(2, 3072), images)
    assert y.tolist() == [3, 4]


# ---------------------------------------------------------------------------- MNIST-1D cache
@pytest.mark.parametrize(
    "content",
    [b"", b"PK\x03\x04 truncated zip", "object", "bad shapes"],
    ids=["empty", "truncated zip", "object array", "bad shapes"],
)
def test_a_broken_mnist1d_cache_is_regenerated(tmp_path, monkeypatch, content):
    import mnist1d.data

    calls = []

    def fake_make(args):
        calls.append(args.num_samples)
        n = args.num_samples
        return {
            "x": np.ones((n - n // 5, 40)),
            "y": np.arange(n - n // 5) % 10,
            "x_test": np.ones((n // 5, 40)),
            "y_test": np.arange(n // 5) % 10,
        }

    monkeypatch.setattr(mnist1d.data, "make_dataset", fake_make)
    file = tmp_path / "mnist1d_50_42.npz"
    if content == "object":
        np.savez(file, x=np.array([object()] * 3, dtype=object), y=1, x_test=1, y_test=1)
    elif content == "bad shapes":
        np.savez(file, x=np.ones(3), y=np.ones(2), x_test=np.ones(3), y_test=np.ones(2))
    else:
        file.write_bytes(content)
    D._MNIST1D_CACHE.clear()
    arrays = D.mnist1d_arrays(50, root=tmp_path)
    assert calls == [50] and arrays["x"].shape == (40, 40)
    D._MNIST1D_CACHE.clear()
    again = D.mnist1d_arrays(50, root=tmp_path)  # the rewritten cache is read back
    assert calls == [50]
    np.testing.assert_array_equal(again["y_test"], arrays["y_test"])
    D._MNIST1D_CACHE.clear()


# ---------------------------------------------------------------------------- command line
def _corrupt_cifar(tmp_path):
    d = _cifar(tmp_path)
    (d / "data_batch_1").write_bytes(pickle.dumps(_batch())[:300])
    return d / "data_batch_1"


def _crafted_cifar(tmp_path):
    d = _cifar(tmp_path)
    (d / "test_batch").write_bytes(pickle.dumps(_batch(data=RunsCode(tmp_path / "m"))))
    return d / "test_batch"


def _truncated_mnist(tmp_path):
    d = _mnist(tmp_path)
    (d / TEST_LAB).write_bytes(_idx(np.arange(10, dtype=np.uint8))[:-3])
    return d / TEST_LAB


def _gz_mnist(tmp_path):
    d = _mnist(tmp_path)
    (d / TRAIN_IMG).unlink()
    (d / (TRAIN_IMG + ".gz")).write_bytes(b"\x1f\x8b\x08" + bytes(40))
    return d / (TRAIN_IMG + ".gz")


@pytest.mark.parametrize(
    ("dataset", "make"),
    [
        ("cifar10", _corrupt_cifar),
        ("cifar10", _crafted_cifar),
        ("mnist", _truncated_mnist),
        ("mnist", _gz_mnist),
    ],
    ids=["truncated cifar", "crafted cifar", "truncated idx", "broken gzip"],
)
def test_cli_exits_2_naming_the_file_and_the_fix(tmp_path, capsys, dataset, make):
    bad = make(tmp_path)
    argv = ["realnet", "--dataset", dataset, "--root", str(tmp_path), "--classes", "0,1"]
    argv += ["--samples-per-class", "1", "--epochs", "1", "--json"]
    assert main(argv) == 2
    out = capsys.readouterr()
    assert out.out == ""
    lines = out.err.strip().splitlines()
    assert len(lines) == 1, out.err  # one line, no traceback
    assert lines[0].startswith(f"dnc-interactive realnet: error: {bad}: ")
    assert "Fix: delete" in lines[0]
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize("content", [b"", b"1,2,3\n", gzip.compress(b"1,2\n")[:-4]])
def test_a_broken_digits_file_names_it_and_the_fix(tmp_path, monkeypatch, content):
    bad = tmp_path / "digits.csv.gz"
    bad.write_bytes(content)
    monkeypatch.setattr(digits_reader, "_digits_file", lambda: bad)  # where _load_digits reads it
    with pytest.raises(D.DatasetFileError, match="bundled digits file is unreadable") as err:
        D.load_dataset("digits")
    assert str(err.value).startswith(f"{bad}: ") and "reinstall scikit-learn" in str(err.value)
