"""Each diagnosis fires on a constructed case and stays silent on a run at L* (theory §8)."""

from __future__ import annotations

import math

import pytest
import torch

from dnc_interactive import theory
from dnc_interactive.config import DUFMConfig
from dnc_interactive.diagnosis import CODES, dead_classes, diagnose, excess_falling
from dnc_interactive.model import DUFM
from dnc_interactive.training import Trainer

BASE = DUFMConfig(samples_per_class=10, depth=3, width=16, dtype="float64")


def _loss(model: DUFM) -> float:
    return float(model.loss().total.detach())


def at_ratio(ratio: float, config: DUFMConfig = BASE) -> DUFMConfig:
    """``config`` with equal lambdas at c / c*_L = ratio (balanced classes)."""
    lam = ratio * theory.critical_lambda(config.K, config.samples_per_class, config.L)
    return config.replace(lambda_H=lam, lambda_W=lam)


def test_at_optimum_on_the_closed_form_and_on_a_trained_run():
    model = DUFM(BASE).load_matrices(*theory.construct_optimum(BASE))
    d = diagnose(model, [_loss(model)])
    assert d.code == "at_optimum" and d.ok
    tr = Trainer(BASE, metrics_every=0).run(tol=1e-6)
    d = tr.diagnosis()
    assert d.code == "at_optimum", d
    assert tr.summary()["diagnosis"]["code"] == "at_optimum"


def test_dead_class_names_the_class_and_the_layer():
    torch.manual_seed(0)
    model = DUFM(BASE)
    with torch.no_grad():
        W1 = model.W[0]
        W1.copy_(-W1.abs())  # every row of W_1 is <= 0 ...
        labels = model.labels
        H = model.H1
        H[:, labels == 0] = H[:, labels == 0].abs()  # ... so class 0 is <= 0 in layer 2
        H[:, labels == 1] = -H[:, labels == 1].abs()  # and class 1 >= 0 (alive)
    dead = dead_classes(model)
    assert dead[0] == (0, 2)  # and so on downstream: a dead class stays dead
    assert {k for k, _ in dead} == {0}
    d = diagnose(model, [_loss(model)])
    assert d.code == "dead_class"
    assert "class 0" in d.message and "layer 2" in d.message
    assert "learning rate" in d.remedy


def test_metastable_minimum_past_the_threshold():
    below = at_ratio(0.95)
    above = at_ratio(1.05)
    assert theory.optimal_q(above) == (0.0, 0.0)
    assert 1.05 < theory.metastable_limit(3)
    # the optimum just below the threshold, evaluated as a point of the problem just above it
    model = DUFM(above).load_matrices(*theory.construct_optimum(below))
    d = diagnose(model, [_loss(model)])
    assert d.code == "metastable"
    assert d.details["q"][0] > 0.5


def test_no_metastable_diagnosis_beyond_the_limit():
    below = at_ratio(0.95)
    far = at_ratio(1.02 * theory.metastable_limit(3))
    model = DUFM(far).load_matrices(*theory.construct_optimum(below))
    assert diagnose(model, [_loss(model)]).code != "metastable"


def test_merged_classes_when_both_classes_get_the_same_output():
    torch.manual_seed(0)
    model = DUFM(BASE)
    with torch.no_grad():
        v = torch.rand(BASE.widths[0], 1, dtype=torch.float64)
        model.H1.copy_(v.expand_as(model.H1))  # every sample has the same features
        for W in model.W:
            W.copy_(W.abs())
    assert dead_classes(model) == []
    d = diagnose(model, [_loss(model)])
    assert d.code == "merged_classes"
    assert d.details["output_rank"] == 1


def test_near_threshold_inside_the_band():
    cfg = at_ratio(0.95)
    model = DUFM(cfg)  # a fresh initialisation: not at the optimum, nothing dead or merged
    assert theory.near_threshold(cfg)
    assert diagnose(model, [_loss(model)]).code == "near_threshold"
    assert not theory.near_threshold(at_ratio(0.85))
    assert not theory.near_threshold(at_ratio(1.15))


def test_converging_versus_stalled():
    model = DUFM(BASE)
    L_star = theory.optimal_loss(BASE)
    now = _loss(model)
    falling = [L_star + (now - L_star) * 2 ** (20 - i) for i in range(21)]
    assert diagnose(model, falling, window=10).code == "converging"
    flat = [now] * 21
    d = diagnose(model, flat, window=10)
    assert d.code == "stalled" and "seed" in d.remedy
    assert excess_falling(falling, L_star, 10) and not excess_falling(flat, L_star, 10)


def test_below_optimum_diverged_and_no_target():
    model = DUFM(BASE)
    L_star = theory.optimal_loss(BASE)
    assert diagnose(model, [0.5 * L_star]).code == "below_optimum"
    assert diagnose(model, [math.nan], diverged=True).code == "diverged"
    ce = DUFM(BASE.replace(loss="ce"))
    assert diagnose(ce, [1.0]).code == "no_target"


def test_bad_arguments_are_named():
    model = DUFM(BASE)
    with pytest.raises(ValueError, match="tol"):
        diagnose(model, [1.0], tol=0)
    with pytest.raises(ValueError, match="window"):
        diagnose(model, [1.0], window=0)


def test_codes_are_stable_names():
    assert CODES[:3] == ("diverged", "at_optimum", "below_optimum")
    assert set(CODES) >= {"dead_class", "metastable", "merged_classes", "near_threshold"}
    assert set(CODES) >= {"converging", "stalled"}
