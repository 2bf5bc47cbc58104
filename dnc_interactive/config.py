"""Configuration of a deep unconstrained features model (theory §1.2).

A :class:`DUFMConfig` fixes everything that defines one L-DUFM problem: K classes with
``n_k`` samples each, ``L`` weight matrices of widths ``d_1..d_L``, the regularization
strengths ``lambda_H`` (on the free features H1) and ``lambda_W`` (one per weight matrix),
the activation and the loss, plus the initialisation scale, seed, dtype and device.

Every field is validated when the config is built, scikit-learn style: a bad value raises
``ValueError`` naming the field, the value and the allowed range. Lists are stored as tuples
so configs are hashable and immutable; :meth:`DUFMConfig.to_dict` / :meth:`from_dict` and
:meth:`to_json` / :meth:`from_json` round-trip them.
"""

from __future__ import annotations

import dataclasses
import json
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

ACTIVATIONS = ("relu", "linear")
LOSSES = ("mse", "ce")
DTYPES = ("float32", "float64")

IntOrSeq = int | Sequence[int]
FloatOrSeq = float | Sequence[float]


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_real(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _as_tuple(name: str, value: Any, kind: str) -> tuple | Any:
    """Lists/tuples become tuples; scalars stay scalars. Strings are rejected."""
    if isinstance(value, str):
        raise ValueError(f"{name}={value!r} is not valid: expected {kind} or a list of them")
    if isinstance(value, Sequence) or hasattr(value, "__iter__"):
        return tuple(value)
    return value


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
        set_ = object.__setattr__
        for name, kind in (
            ("samples_per_class", "an int >= 1"),
            ("width", "an int >= 1"),
            ("lambda_W", "a finite float >= 0"),
        ):
            set_(self, name, _as_tuple(name, getattr(self, name), kind))

        if not _is_int(self.num_classes) or self.num_classes < 2:
            raise ValueError(f"num_classes={self.num_classes!r} is not valid: expected an int >= 2")
        if not _is_int(self.depth) or self.depth < 1:
            raise ValueError(f"depth={self.depth!r} is not valid: expected an int >= 1")

        spc = self.samples_per_class
        if isinstance(spc, tuple):
            if len(spc) != self.num_classes:
                raise ValueError(
                    f"samples_per_class has {len(spc)} entries but num_classes={self.num_classes}:"
                    " expected one int >= 1 per class"
                )
            for k, n in enumerate(spc):
                if not _is_int(n) or n < 1:
                    raise ValueError(
                        f"samples_per_class[{k}]={n!r} is not valid: expected an int >= 1"
                    )
            if len(set(spc)) == 1:
                set_(self, "samples_per_class", spc[0])
        elif not _is_int(spc) or spc < 1:
            raise ValueError(f"samples_per_class={spc!r} is not valid: expected an int >= 1")

        width = self.width
        if isinstance(width, tuple):
            if len(width) != self.depth:
                raise ValueError(
                    f"width has {len(width)} entries but depth={self.depth}: expected one int"
                    " >= 1 per layer (d_1..d_L)"
                )
            for i, d in enumerate(width):
                if not _is_int(d) or d < 1:
                    raise ValueError(f"width[{i}]={d!r} is not valid: expected an int >= 1")
            if len(set(width)) == 1:
                set_(self, "width", width[0])
        elif not _is_int(width) or width < 1:
            raise ValueError(f"width={width!r} is not valid: expected an int >= 1")

        if not _is_real(self.lambda_H) or not math.isfinite(self.lambda_H) or self.lambda_H < 0:
            raise ValueError(
                f"lambda_H={self.lambda_H!r} is not valid: expected a finite float >= 0"
            )
        set_(self, "lambda_H", float(self.lambda_H))
        lw = self.lambda_W
        if isinstance(lw, tuple):
            if len(lw) != self.depth:
                raise ValueError(
                    f"lambda_W has {len(lw)} entries but depth={self.depth}: expected one"
                    " finite float >= 0 per weight matrix"
                )
            for i, v in enumerate(lw):
                if not _is_real(v) or not math.isfinite(v) or v < 0:
                    raise ValueError(
                        f"lambda_W[{i}]={v!r} is not valid: expected a finite float >= 0"
                    )
            lw = tuple(float(v) for v in lw)
            set_(self, "lambda_W", lw[0] if len(set(lw)) == 1 else lw)
        elif not _is_real(lw) or not math.isfinite(lw) or lw < 0:
            raise ValueError(f"lambda_W={lw!r} is not valid: expected a finite float >= 0")
        else:
            set_(self, "lambda_W", float(lw))

        if self.activation not in ACTIVATIONS:
            raise ValueError(
                f"activation={self.activation!r} is not valid: expected one of {ACTIVATIONS}"
            )
        if self.loss not in LOSSES:
            raise ValueError(f"loss={self.loss!r} is not valid: expected one of {LOSSES}")
        if (
            not _is_real(self.init_scale)
            or not math.isfinite(self.init_scale)
            or self.init_scale <= 0
        ):
            raise ValueError(
                f"init_scale={self.init_scale!r} is not valid: expected a finite float > 0"
            )
        set_(self, "init_scale", float(self.init_scale))
        if not _is_int(self.seed) or self.seed < 0:
            raise ValueError(f"seed={self.seed!r} is not valid: expected an int >= 0")
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype={self.dtype!r} is not valid: expected one of {DTYPES}")
        if not isinstance(self.device, str) or not self.device:
            raise ValueError(f"device={self.device!r} is not valid: expected a string like 'cpu'")
        try:
            import torch

            torch.device(self.device)
        except (RuntimeError, ValueError) as exc:
            raise ValueError(
                f"device={self.device!r} is not valid: expected a torch device such as 'cpu'"
                f" or 'cuda' ({exc})"
            ) from None

        narrow = [d for d in (self.widths[1:] if self.activation == "relu" else ()) if d < self.K]
        if narrow:
            warnings.warn(
                f"width {narrow[0]} < num_classes={self.K}: the DNC optimum of theory §2.3 needs"
                " d_l >= K for l >= 2, so the theory's optimal loss may not be reachable",
                UserWarning,
                stacklevel=3,
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
        spc = self.samples_per_class
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
        w = self.width
        return w if isinstance(w, tuple) else (w,) * self.depth

    @property
    def lambda_Ws(self) -> tuple[float, ...]:
        """(lambda_{W_1}, ..., lambda_{W_L})."""
        lw = self.lambda_W
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
    def from_dict(cls, data: dict[str, Any]) -> DUFMConfig:
        """Build from a dict; unknown keys raise ``ValueError`` naming them."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(
                f"unknown DUFMConfig field(s) {unknown}: expected some of {sorted(names)}"
            )
        return cls(**data)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> DUFMConfig:
        return cls.from_dict(json.loads(text))


FIELD_NAMES: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(DUFMConfig))

__all__ = ["DUFMConfig", "FIELD_NAMES", "ACTIVATIONS", "LOSSES", "DTYPES", "field"]
