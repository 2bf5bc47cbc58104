"""Low-rank solutions of the DUFM and the DNC / low-rank classifier (theory §5).

The follow-up paper (arXiv 2405.14468) shows that for K > 2 classes and L >= 3 layers deep
neural collapse is no longer optimal: a *strongly regular graph* (SRG) construction of lower
rank beats it. This module builds that construction explicitly, computes its loss, and labels
trained solutions as "DNC" or "low-rank (rank r)".

**The SRG construction** (theory §5 "Reconstruction"; the paper's exact matrices are not
available, so this is our derivation). K = r(r-1)/2 classes are the edges of the complete graph
K_r; ``B`` in {0,1}^{r x K} is its vertex-edge incidence matrix (:func:`incidence_matrix`,
edges in lexicographic order, r - 1 ones per row). With ``J`` an all-ones matrix and ``P_l``
the embedding of the first rows of R^{d_l}, the *canonical* construction is

* H_1 class means ``M_1 = a P_1 B`` (so ``H_1 = M_1 ⊗ 1_n^T``),
* ``W_l = s_l P_{l+1} P_l^T`` for l = 1..L-2 (identity on an r-dim block), so
  M~_l = M_l = (a s_1..s_{l-1}) B >= 0 for 2 <= l <= L-1,
* ``W_{L-1} = s_{L-1} P_L (B^T - J/2)`` (K x r), so
  ``M~_L = b (B^T B - J)``: 1 on the diagonal, 0 for edges sharing a vertex, -1 for disjoint
  edges. Its rank is r (r - 1 when r = 4, where the trivial eigenvalue 2(r-1) - K vanishes),
  while ``M_L = σ(M~_L) = b I_K`` has rank K,
* ``W_L = s_L [I_K 0]``, so the output class means are ``q I_K`` with q = a s_1 ... s_L.

With t = (a, s_1, .., s_L) and the norm constants ||H_1||^2 = 2nK a^2, ||W_l||^2 = r s_l^2
(l = 1..L-2), ||W_{L-1}||^2 = (K r / 4) s_{L-1}^2 and ||W_L||^2 = K s_L^2, i.e.
``kappa = (2nK, r, .., r, Kr/4, K)``, the loss is
``1/2 (1-q)^2 + sum_i (lambda_i kappa_i / 2) t_i^2``. Minimising over the scales at fixed q
(AM-GM, as in theory §2.2) makes every block equal and leaves
``phi_L(q; C)`` with ``C = (prod_i lambda_i kappa_i)^{1/(L+1)}``: the DNC formula with c
replaced by C (for DNC, kappa = (nK, K, .., K)). The remaining 1-D problem over q is solved
by :func:`dnc_interactive.theory.solve_q`. So ``L_SRG = min_q phi_L(q; C)`` exactly
(:func:`srg_loss`); C / c_DNC = (r 2^{L-3} / (r-1)^{L-2})^{1/(L+1)}, below 1 (SRG better)
for L >= 4 and every r >= 4, above 1 for L = 3.

**The symmetric family** (:func:`srg_optimize`): every matrix is replaced by the most general
combination that commutes with the symmetries of K_r (vertex permutations):
``M_1 = x_1 B + y_1 J``, ``W_l = u_l I + v_l J`` (l = 1..L-2), ``W_{L-1} = w_1 B^T + w_2 J``,
``W_L = z_0 I + z_1 A_1 + z_2 A_2`` (A_1: edges sharing a vertex, A_2: disjoint edges), and the
2L + 3 scalars are optimised numerically (from the canonical point and perturbed
starts; BFGS) with the true ReLU objective of theory §1.2 evaluated on the class means. It is never
worse than the canonical construction and measurably better (e.g. K = 10, L = 4,
lambda = 0.004, n = 5: 0.8830 L_DNC against 0.9113).

**Classifier** (:func:`classify`): numerical ranks (sigma_i > rtol sigma_max, theory §3) of the
class means. Decision, justified by theory §2.3: at a DNC solution M_l (post-ReLU, l >= 2) and
M~_l (pre-ReLU, l >= 3) are orthogonal frames, rank K exactly, while H_1 and M~_2 = W_1 M_1
are *not* unique and may be rank-deficient at the optimum (K = 2: antipodal H_1 means have
rank 1; any Gram with non-positive off-diagonals is optimal, e.g. the simplex ETF of rank
K - 1). So layers 1 and 2 pre-ReLU are reported but not used. A solution is "DNC" when every
used layer has rank K, "low-rank (rank r)" when some has rank r < K (r the smallest), and
"trivial" when the last layer's class means vanish (the q = 0 optimum of theory §2.2).

The package's modules: :mod:`~dnc_interactive.lowrank.srg` (the graph, the canonical
construction and its loss), :mod:`~dnc_interactive.lowrank.symmetric` (the optimised symmetric
family and the SRG / DNC table), :mod:`~dnc_interactive.lowrank.verdict` (the classifier);
every name is importable from ``dnc_interactive.lowrank``.

Layering: imports config, model, metrics and theory only.
"""

from __future__ import annotations

from dnc_interactive.lowrank.srg import (
    SRGResult,
    incidence_matrix,
    srg_construction,
    srg_loss,
    srg_r,
)
from dnc_interactive.lowrank.symmetric import (
    compare_srg_dnc,
    srg_optimize,
    srg_symmetric_matrices,
)
from dnc_interactive.lowrank.verdict import Verdict, classify

__all__ = [
    "SRGResult",
    "Verdict",
    "classify",
    "compare_srg_dnc",
    "incidence_matrix",
    "srg_construction",
    "srg_loss",
    "srg_optimize",
    "srg_r",
    "srg_symmetric_matrices",
]
