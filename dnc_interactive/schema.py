"""One vocabulary for the whole package: history columns, run statuses, optimiser and dtype
names, and the registry of every history metric (theory §1.2, §2.2, §3).

Torch-free and pandas-free (imports the standard library only), so command-line help and
light tools can read it in milliseconds. Everything that writes or reads a tidy history (the
trainer, the real-network experiment, the sweeps, the charts, the command line) takes its
names from here.

* :data:`HISTORY_COLUMNS`: the columns of every tidy history (one row per step x layer x
  metric).
* :class:`Status`: every run status, with the subsets each runner uses
  (:data:`TRAINER_STATUSES`, :data:`BATCH_STATUSES`, :data:`REALNET_STATUSES`).
* :data:`OPTIMIZERS` and :func:`canonical_optimizer`: one spelling per optimiser ("gd" is
  heavy-ball gradient descent everywhere; "sgd" is accepted as its alias).
* :data:`DTYPES`: the dtype names (the torch lookup is
  :func:`dnc_interactive.model.torch_dtype`).
* :data:`METRICS` and :func:`metric_info`: one :class:`Metric` per history metric name, with
  its formula, its theory section, whether charts draw it on a log scale, when it reads as
  collapsed, and the kinds and layers it appears on.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = [
    "diverged_message",
    "BATCH_STATUSES",
    "DTYPES",
    "HISTORY_COLUMNS",
    "LINEAR_METRICS",
    "METRICS",
    "METRIC_TITLES",
    "OPTIMIZERS",
    "OPTIMIZER_ALIASES",
    "REALNET_STATUSES",
    "TRAINER_STATUSES",
    "Metric",
    "Status",
    "canonical_optimizer",
    "is_log_metric",
    "metric_info",
    "metric_title",
]

#: The columns of every tidy history: one row per (step, layer, kind, metric).
HISTORY_COLUMNS: tuple[str, ...] = ("step", "layer", "kind", "metric", "value")

#: The dtype names a configuration may use ("float32", "float64").
DTYPES: tuple[str, ...] = ("float32", "float64")

#: The optimisers, one spelling each: "gd" (full-batch or mini-batch heavy-ball gradient
#: descent; plain GD with momentum 0) and "adam".
OPTIMIZERS: tuple[str, ...] = ("gd", "adam")

#: Old spellings still accepted, mapped to their canonical name.
OPTIMIZER_ALIASES: dict[str, str] = {"sgd": "gd"}


def canonical_optimizer(name: object) -> object:
    """``name`` with an alias replaced by its canonical spelling ("sgd" -> "gd"); any other
    value is returned unchanged (the caller validates it)."""
    if isinstance(name, str):
        return OPTIMIZER_ALIASES.get(name, name)
    return name


class Status(str, enum.Enum):
    """Every status a run can be in; each runner uses a subset (documented below).

    Members compare equal to their plain strings (``Status.DIVERGED == "diverged"``).
    """

    READY = "ready"  #: built, no step taken yet
    RUNNING = "running"  #: inside a step() call
    STOPPED = "stopped"  #: paused between step() calls (may go on)
    CONVERGED = "converged"  #: the trainer's tol reached (gap and NC1)
    PLATEAU = "plateau"  #: the trainer's loss stopped improving
    MAX_STEPS = "max_steps"  #: the step budget is used up
    FINISHED = "finished"  #: a real-network run completed all its epochs
    DIVERGED = "diverged"  #: the loss became non-finite and the guard gave up

    def __str__(self) -> str:
        return self.value


#: Statuses of :class:`~dnc_interactive.training.Trainer` (its ``STATUSES``).
TRAINER_STATUSES: tuple[str, ...] = (
    "ready",
    "running",
    "converged",
    "plateau",
    "max_steps",
    "diverged",
    "stopped",
)

#: Statuses of the members of :class:`~dnc_interactive.optim.BatchedTrainer` (and so of sweep
#: results).
BATCH_STATUSES: tuple[str, ...] = ("ready", "running", "stopped", "max_steps", "diverged")

#: Statuses of :class:`~dnc_interactive.realnets.experiment.RealNetExperiment`.
REALNET_STATUSES: tuple[str, ...] = ("ready", "running", "finished", "diverged", "stopped")


def diverged_message(value: float, step: int, lr: float, remedy: str = "") -> str:
    """The one message of a run stopped by a non-finite loss (the trainer, the real-network
    experiment): what happened, that the history is kept, and what to do."""
    return (
        f"diverged: the loss became {value:.4g} at step {step} (lr={lr:g}); training stopped,"
        " parameters restored to the last finite record and the history kept."
        f" Lower the learning rate{remedy}."
    )


# --------------------------------------------------------------------- metric registry
@dataclass(frozen=True)
class Metric:
    """One history metric.

    Attributes:
        name: the history name (for a per-class metric the prefix: rows are ``f"{name}_{k}"``).
        title: the chart title, with the paper's symbols.
        formula: one line of plain text.
        section: where theory.md defines it ("§3.2").
        log_scale: True when charts draw it on a log y scale.
        collapsed_when: what it reads at collapse ("< tol", "= K", "-", ...).
        kinds: the history kinds it appears on ("model", "pre", "post", "weight", "output").
        layers: the layers it appears on ("0", "1..L", "L", "L+1").
        per_class: True when there is one row per class k (``f"{name}_{k}"``).
        extended: True when only ``layer_metric_rows(extended=True)`` emits it.
    """

    name: str
    title: str
    formula: str
    section: str
    log_scale: bool = True
    collapsed_when: str = "< tol"
    kinds: tuple[str, ...] = ("pre", "post")
    layers: str = "1..L"
    per_class: bool = False
    extended: bool = False


_MODEL = ("model",)
_FEATS = ("pre", "post")

_REGISTRY: tuple[Metric, ...] = (
    # layer 0, kind "model": the loss terms and the optimiser state (theory §1.2, §2.2)
    Metric("loss", "loss L", "fit + reg", "§1.2", collapsed_when="= L*", kinds=_MODEL, layers="0"),
    Metric(
        "fit",
        "fit (1/2N)‖Z − Y‖²_F",
        "(1/2N) ||Z - Y||_F^2 (MSE) or mean cross-entropy (CE)",
        "§1.2",
        collapsed_when="-",
        kinds=_MODEL,
        layers="0",
    ),
    Metric(
        "reg",
        "regulariser",
        "(lambda_H/2)||H1||_F^2 + sum_l (lambda_W_l/2)||W_l||_F^2",
        "§1.2",
        collapsed_when="-",
        kinds=_MODEL,
        layers="0",
    ),
    Metric(
        "reg_H",
        "feature regulariser (λ_H/2)‖H₁‖²_F",
        "(lambda_H/2) ||H1||_F^2",
        "§1.2",
        collapsed_when="-",
        kinds=_MODEL,
        layers="0",
    ),
    Metric(
        "optimal_loss",
        "optimal loss L*",
        "L* = sum_k (n_k/N) phi_L(q_k; c_k)",
        "§2.2",
        collapsed_when="-",
        kinds=_MODEL,
        layers="0",
    ),
    Metric(
        "relative_gap",
        "relative gap (L − L*)/L*",
        "(L - L*) / L*",
        "§2.2",
        kinds=_MODEL,
        layers="0",
    ),
    Metric(
        "lr",
        "learning rate",
        "the optimiser's learning rate now",
        "§8",
        collapsed_when="-",
        kinds=_MODEL,
        layers="0",
    ),
    Metric(
        "restart",
        "start index",
        "index into recipe.starts() of the start the model now holds",
        "§8",
        log_scale=False,
        collapsed_when="-",
        kinds=_MODEL,
        layers="0",
    ),
    Metric(
        "accuracy",
        "training accuracy",
        "fraction of samples with argmax_k Z[k, i] = y_i",
        "§4.2",
        log_scale=False,
        collapsed_when="= 1",
        kinds=_MODEL,
        layers="0",
    ),
    Metric(
        "backbone_reg",
        "backbone regulariser (wd/2)‖θ‖²",
        "(weight_decay/2) ||theta||^2 over the backbone's parameters",
        "§4.2",
        collapsed_when="-",
        kinds=_MODEL,
        layers="0",
    ),
    # layers 1..L, kinds pre / post: the feature metrics (theory §3)
    Metric("nc1", "DNC1: tr(Σ_W Σ_B⁺)/K", "tr(Sigma_W Sigma_B^+) / K", "§3.2"),
    Metric("nc1_trace", "DNC1′: tr(Σ_W)/tr(Σ_B)", "tr(Sigma_W) / tr(Sigma_B)", "§3.2"),
    Metric(
        "nc2_orth",
        "DNC2: ‖MᵀM/‖MᵀM‖_F − I_K/√K‖_F",
        "|| M^T M / ||M^T M||_F - I_K / sqrt(K) ||_F",
        "§3.3",
    ),
    Metric(
        "nc2_etf",
        "DNC2 (ETF): ‖M̄ᵀM̄/‖M̄ᵀM̄‖_F − (I − 11ᵀ/K)/√(K−1)‖_F",
        "|| Mc^T Mc / ||Mc^T Mc||_F - (I - 11^T/K) / sqrt(K-1) ||_F, Mc = M centred",
        "§3.3",
    ),
    Metric(
        "equinorm",
        "equinorm: std‖μ_c − μ_G‖ / mean‖μ_c − μ_G‖",
        "std_c ||mu_c - mu_G|| / mean_c ||mu_c - mu_G||",
        "§3.3",
    ),
    Metric(
        "coherence",
        "coherence: mean |cos(μ_c, μ_c′) + 1/(K−1)|",
        "mean_{c != c'} |cos(mu_c - mu_G, mu_c' - mu_G) + 1/(K-1)|",
        "§3.3",
    ),
    Metric(
        "rank",
        "numerical rank #{σ_i > 10⁻³ σ_max}",
        "#{sigma_i > 1e-3 sigma_max} of the class-mean matrix",
        "§3.6",
        log_scale=False,
        collapsed_when="= K (DNC), < K (low-rank)",
    ),
    Metric(
        "mean_norm",
        "mean class-mean norm ‖μ_c‖",
        "mean_c ||mu_c||",
        "§3.1",
        collapsed_when="-",
    ),
    # weights and output
    Metric(
        "nc3",
        "DNC3: W_l vs span(M_l) (NC3 self-duality at l = L)",
        "l = L: || W_L/||W_L||_F - M_L^T/||M_L||_F ||_F; l < L: W_l's energy outside span(M_l)",
        "§3.4",
        kinds=("weight",),
    ),
    Metric(
        "nc4",
        "NC4: NCC mismatch",
        "fraction of samples whose classifier argmax differs from the nearest class mean",
        "§3.5",
        log_scale=False,
        collapsed_when="= 0",
        kinds=("output",),
        layers="L+1",
    ),
    Metric(
        "q",
        "output scale q_k",
        "q_k = mean over class k of Z[k, i]",
        "§2.2",
        log_scale=False,
        collapsed_when="= q*_k",
        kinds=("output",),
        layers="L+1",
        per_class=True,
    ),
    # the imbalance-aware and per-class metrics (layer_metric_rows(extended=True))
    Metric(
        "nc2_general_orth",
        "DNC2 (general orthogonal frame)",
        "distance of M^T M / ||M^T M||_F from the nearest diagonal Gram, normalised",
        "§3.8",
        extended=True,
    ),
    Metric(
        "cdnv",
        "CDNV (mean over class pairs)",
        "mean_{c != c'} (sigma_c^2 + sigma_c'^2) / (2 ||mu_c - mu_c'||^2)",
        "§3.7",
        extended=True,
    ),
    Metric(
        "cdnv_max",
        "CDNV (largest class pair)",
        "max_{c != c'} (sigma_c^2 + sigma_c'^2) / (2 ||mu_c - mu_c'||^2)",
        "§3.7",
        extended=True,
    ),
    Metric(
        "nc1_class",
        "per-class NC1",
        "tr(Sigma_W,k) / tr(Sigma_B) for class k",
        "§3.9",
        per_class=True,
        extended=True,
    ),
    Metric(
        "cdnv_class",
        "per-class CDNV",
        "mean_{c' != k} CDNV(k, c')",
        "§3.9",
        per_class=True,
        extended=True,
    ),
    Metric(
        "norm_class",
        "class-mean norm ‖μ_k‖",
        "||mu_k||",
        "§3.9",
        collapsed_when="-",
        per_class=True,
        extended=True,
    ),
    Metric(
        "nc3_general",
        "NC3 (general frame)",
        "self-duality of W_L and M_L up to a per-class scale",
        "§3.8",
        kinds=("weight",),
        layers="L",
        extended=True,
    ),
    Metric(
        "nc3_class",
        "per-class NC3",
        "angle between row k of W_L and mu_k",
        "§3.9",
        kinds=("weight",),
        layers="L",
        per_class=True,
        extended=True,
    ),
)

#: Every history metric by name (a per-class metric by its prefix, see :func:`metric_info`).
METRICS: dict[str, Metric] = {m.name: m for m in _REGISTRY}

#: Chart titles by metric name (per-class metrics: see :func:`metric_title`).
METRIC_TITLES: dict[str, str] = {m.name: m.title for m in _REGISTRY if not m.per_class}

#: Metrics drawn on a linear y scale (counts and fractions, often exactly 0 at collapse);
#: the per-class output scales ``q_k`` are linear too (see :func:`is_log_metric`).
LINEAR_METRICS: frozenset[str] = frozenset(
    m.name for m in _REGISTRY if not m.log_scale and not m.per_class and m.kinds != _MODEL
)


def metric_info(name: str) -> Metric | None:
    """The registry entry of history metric ``name`` (``q_3`` and ``nc1_class_0`` resolve to
    their per-class entries ``q`` and ``nc1_class``); None for a name not in the registry."""
    if name in METRICS:
        return METRICS[name]
    prefix, _, k = name.rpartition("_")
    entry = METRICS.get(prefix)
    if k.isdigit() and entry is not None and entry.per_class:
        return entry
    return None


def metric_title(name: str) -> str:
    """The chart title of ``name`` (per-class rows name their class), or the name itself."""
    entry = metric_info(name)
    if entry is None:
        return name
    if entry.per_class:
        k = name.rpartition("_")[2]
        return f"{entry.title} (k = {k})" if entry.name != "q" else f"output scale q_{k}"
    return entry.title


def is_log_metric(name: str) -> bool:
    """Whether charts draw ``name`` on a log scale (unknown names: True)."""
    entry = metric_info(name)
    return True if entry is None else entry.log_scale
