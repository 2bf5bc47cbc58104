"""Deep neural collapse metrics (theory §3), one function per metric, plus a streaming accumulator.

Conventions (one vocabulary across the package):

* ``X`` is a (d, N) feature matrix whose columns are samples, ``y`` an (N,) integer label
  tensor with values 0..K-1 (classes may have different sizes), ``M`` a (d, K) class-mean
  matrix and ``W`` a layer's weight matrix (d_out, d_in).
* Every computation runs in float64, whatever the input dtype; scalar metrics return Python
  floats.
* Class means and the global mean (theory §3)::

      mu_c = (1/n_c) sum_{i: y_i = c} x_i,        mu_G = (1/K) sum_c mu_c

  mu_G is the mean of the class means (not the sample mean; they agree for balanced data), and
  ``Mbar = M - mu_G 1^T`` is the centred mean matrix.
* Scatter matrices (theory §3), with N the total number of samples::

      Sigma_W = (1/N) sum_c sum_{i: y_i = c} (x_i - mu_c)(x_i - mu_c)^T
      Sigma_B = (1/K) sum_c (mu_c - mu_G)(mu_c - mu_G)^T = (1/K) Mbar Mbar^T

* A metric whose normalisation is 0 (all class means equal for NC1, a zero matrix for the
  normalised Gram errors, zero-norm centred means for equinorm/coherence, a zero ``W`` for the
  NC3 errors) is undefined and returns ``nan``.

Nothing in here forms or inverts a d x d matrix for the one-shot metrics: every between-class
quantity comes from the SVD of the (d, K) mean matrix. The model-level helpers
(:func:`layer_metric_rows`, :func:`collapse_report` and the ``*_frame`` snapshot builders) read a
:class:`~dnc_interactive.model.DUFM`; the metrics know nothing of training.

This package re-exports every metric; one module per job: ``names`` (metric names and
cut-offs), ``means`` (theory §3.1), ``variability`` (NC1, §3.2), ``batch`` (one pass over a
batch of every feature metric), ``geometry`` (NC2 and the general frame, §3.3, §3.8),
``alignment`` (NC3, §3.4, §3.8), ``nc4`` (§3.5), ``spectrum`` (rank, §3.6), ``class_distance``
(CDNV, §3.7, §3.9), ``accumulator`` (streaming), ``rows`` (per-layer rows and the collapse
report) and ``frames`` (chart snapshots).
"""

from dnc_interactive.metrics.accumulator import (
    CollapseAccumulator,
)
from dnc_interactive.metrics.alignment import (
    dnc3_subspace,
    nc3_general,
    nc3_per_class,
    nc3_self_duality,
)
from dnc_interactive.metrics.batch import (
    nc1,
    nc1_details,
    nc1_per_class,
    nc1_trace,
)
from dnc_interactive.metrics.class_distance import (
    cdnv,
    cdnv_matrix,
    cdnv_per_class,
)
from dnc_interactive.metrics.frames import (
    gram_frame,
    output_scale_frame,
    projection_frame,
    singular_value_frame,
)
from dnc_interactive.metrics.geometry import (
    coherence,
    equinorm,
    gram,
    nc2_etf,
    nc2_general_orth,
    nc2_orthogonal,
    norm_ratio_error,
)
from dnc_interactive.metrics.means import (
    class_means,
)
from dnc_interactive.metrics.names import (
    CLASS_METRICS,
    COLLAPSE_TOL,
    EXTENDED_METRICS,
    FEATURE_METRICS,
    class_metric,
)
from dnc_interactive.metrics.names import (
    F64 as F64,
)
from dnc_interactive.metrics.names import (
    NC1_RCOND as NC1_RCOND,
)
from dnc_interactive.metrics.names import (
    RANK_RTOL as RANK_RTOL,
)
from dnc_interactive.metrics.nc4 import (
    _nc4_core as _nc4_core,
)
from dnc_interactive.metrics.nc4 import (
    nc4_ncc_mismatch,
)
from dnc_interactive.metrics.rows import (
    collapse_report,
    layer_metric_rows,
    nc1_layer_details,
)
from dnc_interactive.metrics.spectrum import (
    rank,
    singular_values,
)
from dnc_interactive.metrics.variability import (
    NC1Details,
)

__all__ = [
    "CLASS_METRICS",
    "COLLAPSE_TOL",
    "EXTENDED_METRICS",
    "FEATURE_METRICS",
    "NC1Details",
    "CollapseAccumulator",
    "cdnv",
    "cdnv_matrix",
    "cdnv_per_class",
    "class_means",
    "class_metric",
    "coherence",
    "collapse_report",
    "dnc3_subspace",
    "equinorm",
    "gram",
    "gram_frame",
    "layer_metric_rows",
    "nc1",
    "nc1_details",
    "nc1_layer_details",
    "nc1_per_class",
    "nc1_trace",
    "nc2_etf",
    "nc2_general_orth",
    "nc2_orthogonal",
    "nc3_general",
    "nc3_per_class",
    "nc3_self_duality",
    "nc4_ncc_mismatch",
    "norm_ratio_error",
    "output_scale_frame",
    "projection_frame",
    "rank",
    "singular_value_frame",
    "singular_values",
]
