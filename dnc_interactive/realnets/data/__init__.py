"""Datasets of the real-network experiment (theory §4.2), offline first.

Two datasets need no network at all and are the defaults:

* ``"digits"``: scikit-learn's bundled 8x8 handwritten digits (1 797 images, 174-183 per
  class, values 0..16), shape (1, 8, 8). There is no official test split.
* ``"mnist1d"``: the procedurally generated MNIST-1D of Greydanus & Steinbach (package
  ``mnist1d``), built locally with its generator functions (never downloaded): 1-D signals of
  shape (1, 40); the default generator arguments give 4 000 training and 1 000 test samples.
  Generation takes a few seconds, so the arrays are cached in memory and, if possible, in
  the cache directory (see :func:`default_root`).

Three datasets are read from their raw files under a root directory, with our own readers
(no torchvision needed to *read* them):

* ``"mnist"`` and ``"fashion_mnist"``: the IDX files ``train-images-idx3-ubyte``,
  ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``
  (optionally ``.gz``), shape (1, 28, 28).
* ``"cifar10"``: the python pickle batches ``cifar-10-batches-py/data_batch_1..5`` and
  ``test_batch`` (dicts with ``b"data"`` (n, 3072) uint8 and ``b"labels"``), shape (3, 32, 32).
  They are read by a restricted unpickler that admits only the numpy array reconstructors a
  batch needs (never ``pickle.load``): a crafted file is refused, it cannot run code.

Every raw file is checked as it is read: a file that is corrupt, truncated, unreadable or not
in its format raises :class:`DatasetFileError` (a ``ValueError``) naming the file, what is
wrong and the fix (the command line exits with status 2).

The readers look in ``root``, in torchvision's layout (``root/MNIST/raw``,
``root/FashionMNIST/raw``, ``root/cifar-10-batches-py``) and a few obvious variants. When the
files are missing and ``download=True``, torchvision (the optional extra ``vision``) fetches
them; otherwise :class:`DatasetUnavailableError` names the dataset, the places searched and
the fix.

Selection (:func:`select`): the chosen classes are relabelled 0..K-1 in the order given, the
first n_k samples of each class of a seeded permutation are kept, and the result is
class-ordered (n_0 samples of class 0, then class 1, ...), the column order of theory §1.2.
Inputs are scaled to [0, 1] and then standardised per channel with the mean and standard
deviation of the selected training samples (:func:`standardize`).

This package re-exports every name; one module per job: ``catalog`` (names, shapes,
:class:`Dataset`, the errors), ``files`` (finding and fetching raw files), ``idx`` (MNIST,
Fashion-MNIST), ``safe_pickle`` (the restricted unpickler), ``cifar`` (CIFAR-10), ``digits``,
``mnist_1d`` (generation and caches) and ``selection`` (:func:`load_dataset`, :func:`select`,
:func:`standardize`).
"""

from dnc_interactive.realnets.data.catalog import (
    DATASETS,
    INPUT_SHAPES,
    NUM_CLASSES,
    OFFLINE_DATASETS,
    Dataset,
    DatasetFileError,
    DatasetUnavailableError,
    check_dataset_name,
    default_root,
)
from dnc_interactive.realnets.data.cifar import (
    read_cifar_batch,
    write_cifar_batch,
)
from dnc_interactive.realnets.data.idx import (
    read_idx,
    write_idx,
)
from dnc_interactive.realnets.data.mnist_1d import (
    _MNIST1D_CACHE as _MNIST1D_CACHE,
)
from dnc_interactive.realnets.data.mnist_1d import (
    mnist1d_arrays,
)
from dnc_interactive.realnets.data.selection import (
    check_classes,
    load_dataset,
    select,
    standardize,
)

__all__ = [
    "DATASETS",
    "INPUT_SHAPES",
    "NUM_CLASSES",
    "OFFLINE_DATASETS",
    "Dataset",
    "DatasetFileError",
    "DatasetUnavailableError",
    "check_classes",
    "check_dataset_name",
    "default_root",
    "load_dataset",
    "mnist1d_arrays",
    "read_cifar_batch",
    "read_idx",
    "select",
    "standardize",
    "write_cifar_batch",
    "write_idx",
]
