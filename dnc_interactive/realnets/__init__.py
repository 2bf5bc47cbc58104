"""Real networks with a DUFM head: do trained networks recover the unconstrained features?

The paper's second experiment (theory §4.2): a backbone (MLP, small CNN or ResNet-20) whose
output is the head's H1, an L-layer bias-free ReLU MLP head (theory §1.2), DUFM-style
regularisation, per-layer DNC metrics (theory §3) and a comparison with the DUFM's optimal
loss L* (theory §2.2, §6) for the same K, n_k and lambdas.

* :mod:`.data`: offline datasets (scikit-learn digits, locally generated MNIST-1D) and raw-file
  readers for MNIST, Fashion-MNIST (IDX) and CIFAR-10 (python pickle batches).
* :mod:`.backbones`: the backbones and the DUFM head.
* :mod:`.config`: :class:`RealNetConfig`, its validation rules, the presets (:func:`preset`).
* :mod:`.prepare`: :func:`prepare_data` (class selection, n_k, standardisation).
* :mod:`.train`: the optimiser, the learning-rate schedule, the epoch loop and
  :func:`train_head_on_features`.
* :mod:`.evaluate`: the streaming measurement (:class:`Evaluation`).
* :mod:`.recovery`: the recovery test (:class:`RecoveryResult`).
* :mod:`.experiment`: :class:`RealNetExperiment`, the coordinator (training, measurement,
  tidy history, recovery test); it re-exports the names of the modules above.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dnc_interactive.realnets.backbones import (
        BACKBONES,
        DUFMHead,
        MLPBackbone,
        ResNet20,
        SmallCNN,
        build_backbone,
        count_parameters,
    )
    from dnc_interactive.realnets.data import (
        DATASETS,
        OFFLINE_DATASETS,
        Dataset,
        DatasetUnavailableError,
        load_dataset,
        read_cifar_batch,
        read_idx,
        write_cifar_batch,
        write_idx,
    )
    from dnc_interactive.realnets.experiment import (
        PRESETS,
        Evaluation,
        PreparedData,
        RealNetConfig,
        RealNetExperiment,
        RecoveryResult,
        prepare_data,
        preset,
        run_experiment,
        train_head_on_features,
    )

# public name -> the module that defines it; imported on first use (PEP 562), so that
# ``dnc_interactive.realnets.config`` (and the realnet command's --help) need no torch
_LAZY: dict[str, str] = {
    "BACKBONES": "dnc_interactive.realnets.backbones",
    "DUFMHead": "dnc_interactive.realnets.backbones",
    "MLPBackbone": "dnc_interactive.realnets.backbones",
    "ResNet20": "dnc_interactive.realnets.backbones",
    "SmallCNN": "dnc_interactive.realnets.backbones",
    "build_backbone": "dnc_interactive.realnets.backbones",
    "count_parameters": "dnc_interactive.realnets.backbones",
    "DATASETS": "dnc_interactive.realnets.data",
    "OFFLINE_DATASETS": "dnc_interactive.realnets.data",
    "Dataset": "dnc_interactive.realnets.data",
    "DatasetUnavailableError": "dnc_interactive.realnets.data",
    "load_dataset": "dnc_interactive.realnets.data",
    "read_cifar_batch": "dnc_interactive.realnets.data",
    "read_idx": "dnc_interactive.realnets.data",
    "write_cifar_batch": "dnc_interactive.realnets.data",
    "write_idx": "dnc_interactive.realnets.data",
    "PRESETS": "dnc_interactive.realnets.experiment",
    "Evaluation": "dnc_interactive.realnets.experiment",
    "PreparedData": "dnc_interactive.realnets.experiment",
    "RealNetConfig": "dnc_interactive.realnets.experiment",
    "RealNetExperiment": "dnc_interactive.realnets.experiment",
    "RecoveryResult": "dnc_interactive.realnets.experiment",
    "prepare_data": "dnc_interactive.realnets.experiment",
    "preset": "dnc_interactive.realnets.experiment",
    "run_experiment": "dnc_interactive.realnets.experiment",
    "train_head_on_features": "dnc_interactive.realnets.experiment",
}


__all__ = [
    "BACKBONES",
    "PRESETS",
    "DATASETS",
    "OFFLINE_DATASETS",
    "DUFMHead",
    "Dataset",
    "DatasetUnavailableError",
    "Evaluation",
    "MLPBackbone",
    "PreparedData",
    "RealNetConfig",
    "RealNetExperiment",
    "RecoveryResult",
    "ResNet20",
    "SmallCNN",
    "build_backbone",
    "count_parameters",
    "load_dataset",
    "prepare_data",
    "preset",
    "read_cifar_batch",
    "read_idx",
    "run_experiment",
    "train_head_on_features",
    "write_cifar_batch",
    "write_idx",
]


def __getattr__(name: str) -> Any:
    try:
        module_name = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
