"""Configuration of a deep unconstrained features model (theory §1.2).

A :class:`DUFMConfig` fixes everything that defines one L-DUFM problem: K classes with
``n_k`` samples each, ``L`` weight matrices of widths ``d_1..d_L``, the regularization
strengths ``lambda_H`` (on the free features H1) and ``lambda_W`` (one per weight matrix),
the activation and the loss, plus the initialisation scale, seed, dtype and device.

Every field is validated when the config is built, scikit-learn style, against the one
table :data:`RULES` (:mod:`dnc_interactive.validation`): a bad value raises
:class:`~dnc_interactive.validation.ParameterError` (a ``ValueError``) naming the field, the
value and the allowed range, and a problem too big for the resource budget (memory and work
per step, estimated from K, N, d_l and L before anything is allocated) raises its subclass
``BudgetError`` with the estimate and the limit. Lists are stored as tuples so configs are
hashable and immutable; :meth:`DUFMConfig.to_dict` / :meth:`from_dict` and
:meth:`to_json` / :meth:`from_json` round-trip them.
"""

from __future__ import annotations

import dataclasses
import json
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from dnc_interactive.schema import DTYPES
from dnc_interactive.validation import (
    FLOAT_MAX,
    SEED,
    BudgetError,
    Device,
    Int,
    OneOf,
    ParameterError,
    Real,
    Rule,
    check_dufm_budget,
    check_fields,
    check_known,
)

ACTIVATIONS = ("relu", "linear")
LOSSES = ("mse", "ce")

#: Upper bound of every lambda. Past the critical lambda only the zero solution is optimal, but
#: the critical lambda_H alone (the other lambdas small, L deep) can be huge, so the bound is a
#: sanity one; the initial objective must also be finite in the dtype (see DUFMConfig).
LAMBDA_CAP = 1e30
#: The initial objective (its regularization terms) must stay below this share of the dtype's
#: largest float, so that the first steps cannot overflow it.
OVERFLOW_MARGIN = 1e-6

#: The constraints of every DUFMConfig field, checked in this order (one table: see
#: :mod:`dnc_interactive.validation`). RealNetConfig reuses the head's rules from here.
RULES: dict[str, Rule] = {
    "num_classes": Int(ge=2, cap=10_000),
    "samples_per_class": Int(
        ge=1, cap=10_000_000, listable=True, length="num_classes", unit="class"
    ),
    "depth": Int(ge=1, cap=1000),
    "width": Int(ge=1, cap=1_000_000, listable=True, length="depth", unit="layer (d_1..d_L)"),
    "lambda_H": Real(ge=0, cap=LAMBDA_CAP, fits="dtype"),
    "lambda_W": Real(
        ge=0, cap=LAMBDA_CAP, fits="dtype", listable=True, length="depth", unit="weight matrix"
    ),
    "activation": OneOf(ACTIVATIONS),
    "loss": OneOf(LOSSES),
    "init_scale": Real(gt=0, cap=1000.0, fits="dtype"),
    "seed": SEED,
    "dtype": OneOf(DTYPES),
    "device": Device(),
}

IntOrSeq = int | Sequence[int]
FloatOrSeq = float | Sequence[float]
# what __post_init__ leaves in a listable field: the number, or a tuple (never a list)
_IntOrTuple = int | tuple[int, ...]
_FloatOrTuple = float | tuple[float, ...]


@dataclass(frozen=True)
class DUFMConfig:
    """One L-DUFM problem (theory §1.2).

    Attributes:
        num_classes: K >= 2.
        samples_per_class: n (same for every class) or one count n_k >= 1 per class.
        depth: L >= 1, the number of weight matrices W_1..W_L (L - 1 ReLUs).
        width: d_l of the features H_l, one int for all layers or one per layer l = 1..L
            (d_1 is the dimension of the free features H1). The output has d_{L+1} = K.
        lambda_H: lambda_{H_1} >= 0, the weight of (lambda_H / 2) ||H1||_F^2.
        lambda_W: lambda_{W_l} >= 0, one value for all layers or one per layer.
        activation: "relu" (the paper) or "linear" (the deep linear UFM).
        loss: "mse" (the paper, (1/2N)||Z - Y||_F^2) or "ce" (cross-entropy, an extension).
        init_scale: standard deviation of the entries of H1 at initialisation (> 0).
            Weights use He-style N(0, 2/d_in) (hidden) and N(0, 1/d_in) (last layer).
        seed: random seed of the initialisation (an int >= 0).
        dtype: "float32" or "float64".
        device: a torch device string such as "cpu" or "cuda".
    """

    num_classes: int = 2
    samples_per_class: IntOrSeq = 50
    depth: int = 4
    width: IntOrSeq = 64
    lambda_H: float = 1e-3
    lambda_W: FloatOrSeq = 1e-3
    activation: str = "relu"
    loss: str = "mse"
    init_scale: float = 0.1
    seed: int = 0
    dtype: str = "float32"
    device: str = "cpu"

    # ------------------------------------------------------------------ validation
    def __post_init__(self) -> None:
        values = check_fields("DUFMConfig", RULES, {name: getattr(self, name) for name in RULES})
        for name, value in values.items():
            object.__setattr__(self, name, value)
        # the budget, by arithmetic on K, n_k, L and d_l: before anything is allocated
        check_dufm_budget(
            self.num_classes,
            cast(_IntOrTuple, self.samples_per_class),
            self.depth,
            cast(_IntOrTuple, self.width),
            self.dtype,
            device=self.device,
        )
        self._check_dtype_range()

        narrow = [d for d in (self.widths[1:] if self.activation == "relu" else ()) if d < self.K]
        if narrow:
            warnings.warn(
                f"width {narrow[0]} < num_classes={self.K}: the DNC optimum of theory §2.3 needs"
                " d_l >= K for l >= 2, so the theory's optimal loss may not be reachable",
                UserWarning,
                stacklevel=3,
            )

    def _check_dtype_range(self) -> None:
        """Refuse lambdas / init_scale whose initial objective would overflow the dtype:
        E||H1||^2 = init_scale^2 d_1 N and E||W_l||^2 ~ 2 d_{l+1} (He initialisation)."""
        limit = FLOAT_MAX[self.dtype] * OVERFLOW_MARGIN
        widths = self.widths
        terms = {"lambda_H": 0.5 * self.lambda_H * self.init_scale**2 * widths[0] * self.N}
        outs = (*widths[1:], self.K)
        terms["lambda_W"] = sum(lw * d for lw, d in zip(self.lambda_Ws, outs, strict=True))
        name, value = max(terms.items(), key=lambda kv: kv[1])
        if value > limit:
            if name == "lambda_H" and self.init_scale > 1:
                name = "init_scale"
            raise ParameterError(
                name,
                getattr(self, name),
                f"a value whose initial objective fits {self.dtype}",
                message=(
                    f"{name}={getattr(self, name)!r} is not valid: the initial objective would"
                    f" be about {value:.3g}, too close to the largest {self.dtype}"
                    f" ({FLOAT_MAX[self.dtype]:.3g}): lower {name}, or use float64"
                ),
                owner="DUFMConfig",
            )

    # ------------------------------------------------------------------ derived quantities
    @property
    def K(self) -> int:
        """Number of classes K."""
        return self.num_classes

    @property
    def L(self) -> int:
        """Number of weight matrices L."""
        return self.depth

    @property
    def class_sizes(self) -> tuple[int, ...]:
        """n_k for k = 0..K-1."""
        spc = cast(_IntOrTuple, self.samples_per_class)
        return spc if isinstance(spc, tuple) else (spc,) * self.num_classes

    @property
    def balanced(self) -> bool:
        """True when every class has the same number of samples."""
        return len(set(self.class_sizes)) == 1

    @property
    def N(self) -> int:
        """Total number of samples N = sum_k n_k."""
        return sum(self.class_sizes)

    @property
    def widths(self) -> tuple[int, ...]:
        """(d_1, ..., d_L): feature dimension entering each weight matrix."""
        w = cast(_IntOrTuple, self.width)
        return w if isinstance(w, tuple) else (w,) * self.depth

    @property
    def lambda_Ws(self) -> tuple[float, ...]:
        """(lambda_{W_1}, ..., lambda_{W_L})."""
        lw = cast(_FloatOrTuple, self.lambda_W)
        return lw if isinstance(lw, tuple) else (lw,) * self.depth

    @property
    def equal_lambdas(self) -> bool:
        """True when lambda_H and every lambda_{W_l} are the same number."""
        return len({self.lambda_H, *self.lambda_Ws}) == 1

    def labels(self) -> list[int]:
        """Class label of each of the N columns (class-ordered: n_0 zeros, n_1 ones, ...)."""
        return [k for k, n in enumerate(self.class_sizes) for _ in range(n)]

    # ------------------------------------------------------------------ (de)serialisation
    def replace(self, **changes: Any) -> DUFMConfig:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain-Python dict (tuples become lists) that :meth:`from_dict` reads back."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            out[f.name] = list(v) if isinstance(v, tuple) else v
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DUFMConfig:
        """Build from a dict; unknown keys raise ``ValueError`` naming them."""
        if not isinstance(data, Mapping):
            raise ParameterError("data", data, "a dict of DUFMConfig fields", owner="DUFMConfig")
        check_known("DUFMConfig", data, [f.name for f in dataclasses.fields(cls)])
        return cls(**data)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> DUFMConfig:
        """Build from :meth:`to_json`'s text (``ValueError`` naming ``text`` if it is not
        a JSON object)."""
        allowed = "a JSON object of DUFMConfig fields"
        if not isinstance(text, (str, bytes, bytearray)):
            raise ParameterError("text", text, allowed, owner="DUFMConfig")
        try:
            data = json.loads(text)
        except (ValueError, RecursionError):
            raise ParameterError("text", text, allowed, owner="DUFMConfig") from None
        return cls.from_dict(data)


FIELD_NAMES: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(DUFMConfig))

__all__ = [
    "ACTIVATIONS",
    "DTYPES",
    "FIELD_NAMES",
    "LAMBDA_CAP",
    "LOSSES",
    "OVERFLOW_MARGIN",
    "RULES",
    "BudgetError",
    "DUFMConfig",
    "ParameterError",
    "field",
]
