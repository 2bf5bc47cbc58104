"""The real-network experiment: config validation, exact objective, streaming metrics,
collapse and the recovery test on small fast runs (theory §1.2, §3, §4.2)."""

import math
import warnings

import numpy as np
import pytest
import torch

from dnc_interactive import metrics, theory
from dnc_interactive.realnets import (
    RealNetConfig,
    RealNetExperiment,
    ResNet20,
    SmallCNN,
    count_parameters,
    prepare_data,
    write_cifar_batch,
)
from dnc_interactive.realnets.experiment import train_head_on_features

# A small digits run: 2 classes x 40 samples, 3-layer head; ~2 s of CPU.
SMALL = dict(
    dataset="digits",
    classes=(0, 1),
    samples_per_class=40,
    depth=3,
    epochs=500,
    record_every=50,
    device="cpu",
)


@pytest.fixture(scope="module")
def small_run():
    torch.set_num_threads(1)
    return RealNetExperiment(RealNetConfig(**SMALL)).run()


# ---------------------------------------------------------------------------- validation
@pytest.mark.parametrize(
    "change, fragment",
    [
        ({"dataset": "imagenet"}, "dataset='imagenet' is not valid"),
        ({"classes": (0, 10)}, "class 10 is not in dataset 'digits'"),
        ({"classes": (3,)}, "at least 2 classes"),
        ({"width": 1}, "width=1 is not valid: the head's hidden width must be >= K = 2"),
        ({"classes": (0, 1, 2), "feature_dim": 2}, "feature_dim=2 is not valid"),
        ({"samples_per_class": (5, 5, 5)}, "samples_per_class has 3 entries"),
        ({"samples_per_class": 0}, "samples_per_class=0 is not valid"),
        ({"lambda_H": -1.0}, "lambda_H=-1.0 is not valid"),
        ({"lambda_W": (1e-3, 1e-3)}, "lambda_W has 2 entries but depth=4"),
        ({"epochs": 0}, "epochs=0 is not valid"),
        ({"batch_size": 0}, "batch_size=0 is not valid"),
        ({"lr": 0.0}, "lr=0.0 is not valid"),
        ({"optimizer": "lbfgs"}, "optimizer='lbfgs' is not valid"),
        ({"backbone": "vgg"}, "backbone='vgg' is not valid"),
        ({"dataset": "mnist1d", "backbone": "resnet20"}, "backbone='resnet20' is not valid"),
        ({"device": "tpu:x"}, "device='tpu:x' is not valid"),
    ],
)
def test_config_rejects_bad_values_naming_the_field(change, fragment):
    with pytest.raises(ValueError) as err:
        RealNetConfig(**change)
    assert fragment in str(err.value)


def test_more_samples_than_exist_is_a_value_error():
    with pytest.raises(
        ValueError, match="samples_per_class=500 is not valid for class 0: .* only 178"
    ):
        RealNetExperiment(RealNetConfig(samples_per_class=500, device="cpu"))


def test_config_round_trip_and_defaults():
    c = RealNetConfig(classes=[3, 5], lambda_W=[1e-3] * 4, samples_per_class=[7, 7])
    assert c.classes == (3, 5) and c.lambda_W == 1e-3 and c.samples_per_class == 7
    assert c.K == 2 and c.head_widths == (64, 64, 64, 64)
    assert RealNetConfig.from_dict(c.to_dict()) == c
    assert RealNetConfig(classes=None).K == 10
    with pytest.raises(ValueError, match="unknown RealNetConfig field"):
        RealNetConfig.from_dict({"depht": 3})


# ---------------------------------------------------------------------------- exactness
@pytest.fixture(scope="module")
def tiny64():
    torch.set_num_threads(1)
    cfg = RealNetConfig(**{**SMALL, "samples_per_class": (12, 9), "epochs": 30, "dtype": "float64"})
    return RealNetExperiment(cfg).run()


def test_head_loss_is_the_dufm_objective_at_the_backbone_features(tiny64):
    exp = tiny64
    ev = exp.evaluate()
    # independent computation from the features and weights, straight from theory §1.2
    H = exp.features()
    W = exp.head_weights()
    Y = torch.nn.functional.one_hot(exp.labels, 2).T.double()
    X = H
    for Wl in W[:-1]:
        X = torch.relu(Wl @ X)
    Z = W[-1] @ X
    N = 21
    fit = float(((Z - Y) ** 2).sum()) / (2 * N)
    reg_H = 0.5 * exp.config.lambda_H * float((H**2).sum())
    reg_W = sum(0.5 * exp.config.lambda_W * float((Wl**2).sum()) for Wl in W)
    assert ev.fit == pytest.approx(fit, rel=1e-10)
    assert ev.reg_H == pytest.approx(reg_H, rel=1e-10)
    assert ev.loss == pytest.approx(fit + reg_H + reg_W, rel=1e-10)
    # and the DUFM of the same K, n_k, L, lambdas gives the same value and the reference L*
    model = exp.to_dufm()
    assert float(model.loss().total.detach()) == pytest.approx(ev.loss, rel=1e-10)
    assert model.config.class_sizes == (12, 9)
    assert exp.optimal_loss == theory.optimal_loss(model.config)
    assert exp.history.query("metric == 'optimal_loss'")["value"].iloc[-1] == exp.optimal_loss


def test_streaming_metrics_match_the_one_shot_metrics(tiny64):
    exp = tiny64
    streamed = {(l, k, m): v for l, k, m, v in exp.evaluate().rows}
    direct = {(l, k, m): v for l, k, m, v in metrics.layer_metric_rows(exp.to_dufm())}
    assert streamed.keys() == direct.keys()
    for key, value in direct.items():
        if key[2] == "rank":
            assert streamed[key] == value, key
        else:
            assert streamed[key] == pytest.approx(value, rel=1e-6, abs=1e-12), key


def test_minibatch_objective_averages_to_the_full_objective(tiny64):
    exp = tiny64
    exp.backbone.eval()
    with torch.no_grad():
        full = float(exp.objective())
        perm = torch.randperm(exp.N, generator=torch.Generator().manual_seed(0))
        parts = perm.split(5)  # 5, 5, 5, 5, 1: unequal batches, weights B_b / N
        avg = sum(len(b) / exp.N * float(exp.objective(b)) for b in parts)
        head = exp.evaluate().loss
        wd_term = float(exp._backbone_reg())
    exp.backbone.train()
    assert avg == pytest.approx(full, rel=1e-12)
    assert full - wd_term == pytest.approx(head, rel=1e-10)
    assert wd_term > 0


def test_training_step_is_gradient_descent_on_the_objective():
    cfg = RealNetConfig(
        **{
            **SMALL,
            "samples_per_class": 6,
            "optimizer": "sgd",
            "momentum": 0.0,
            "schedule": "constant",
            "lr": 0.05,
            "epochs": 1,
            "dtype": "float64",
        }
    )
    exp = RealNetExperiment(cfg)
    params = [*exp.backbone.parameters(), *exp.head.parameters()]
    before = [p.detach().clone() for p in params]
    grads = torch.autograd.grad(exp.objective(), params)
    exp.run(1)
    for p, b, g in zip(params, before, grads, strict=True):
        torch.testing.assert_close(p.detach(), b - 0.05 * g, rtol=1e-9, atol=1e-12)


def test_same_config_gives_the_same_history():
    cfg = RealNetConfig(**{**SMALL, "epochs": 10, "batch_size": 16, "record_every": 7})
    exp = RealNetExperiment(cfg).run()
    a = exp.history
    b = RealNetExperiment(cfg).run().history
    assert a.equals(b)
    assert exp.steps == 50 and sorted(a["step"].unique()) == [0, 7, 14, 21, 28, 35, 42, 49, 50]
    exp.run()  # nothing left to train: no new record
    assert len(exp.history) == len(a)


def test_cnn_backbone_trains_on_mnist1d_signals(tmp_path):
    cfg = RealNetConfig(
        dataset="mnist1d",
        classes=(0, 1),
        samples_per_class=8,
        mnist1d_samples=200,
        root=str(tmp_path),
        backbone="cnn",
        backbone_width=8,
        depth=2,
        epochs=60,
        record_every=20,
        device="cpu",
    )
    exp = RealNetExperiment(cfg)
    start = exp.loss
    exp.run()
    assert exp.data.input_shape == (1, 40) and exp.loss < start


# ---------------------------------------------------------------------------- collapse
def test_small_digits_run_collapses_to_the_dufm_optimum(small_run):
    exp = small_run
    s = exp.summary()
    assert s["train_accuracy"] == 1.0 and s["status"] == "finished"
    assert 0 <= s["relative_gap"] < 0.02  # K = 2: L* is the global optimum, never beaten
    for row in exp.layer_summary():
        assert row["nc1"] < 1e-3 and row["pre_nc1"] < 1e-3, row
        assert row["rank"] == 2 and row["solution"] == "DNC" and row["collapsed"]
    # layer 1 is the backbone's output: pre = post = H1
    h = exp.history
    last = h[h["step"] == h["step"].max()]
    l1 = last[last["layer"] == 1].pivot_table(index="metric", columns="kind", values="value")
    assert l1["pre"].equals(l1["post"])
    # the loss history falls from the trivial start to near L*
    loss = h.query("metric == 'loss'")["value"]
    assert loss.iloc[0] > 10 * exp.optimal_loss and loss.iloc[-1] < 1.02 * exp.optimal_loss


def test_recovery_frozen_features_reach_the_optimum(small_run):
    rec = small_run.recovery(steps=800, free_steps=400)
    s = rec.summary()
    assert abs(s["frozen_gap"]) < 2e-3  # fresh head on the frozen features reaches L*
    assert s["frozen_max_nc1"] < 1e-3
    assert (rec.frozen_report["rank"] == 2).all()
    assert 0 <= s["free_gap"] < 1e-4  # a DUFM started at the features stays near them
    assert s["h1_shift"] < 0.1
    hist = rec.frozen_history
    assert list(hist.columns) == ["step", "layer", "kind", "metric", "value"]
    assert {"loss", "relative_gap", "nc1"} <= set(hist["metric"])


def test_train_head_on_features_is_a_trainer_with_frozen_features():
    # the head trainer runs on the optimisation core: H1 untouched, the trainer's history
    from dnc_interactive.config import DUFMConfig
    from dnc_interactive.training import HISTORY_COLUMNS

    cfg = DUFMConfig(num_classes=2, samples_per_class=6, depth=2, width=5, dtype="float64")
    gen = torch.Generator().manual_seed(1)
    H1 = 0.3 * torch.randn(5, 12, generator=gen, dtype=torch.float64)
    model, hist = train_head_on_features(cfg, H1, steps=95, record_every=10)
    assert torch.equal(model.H1, H1)
    assert tuple(hist.columns) == HISTORY_COLUMNS
    loss = hist.query("metric == 'loss'")
    assert list(loss["step"]) == [*range(0, 100, 10), 95]
    assert loss["value"].iloc[-1] < loss["value"].iloc[0]
    assert set(hist.query("step == 95 and layer > 0")["metric"]) >= {"nc1", "nc3", "nc4"}
    # the same run by hand: the loss of a Trainer(train_H1=False) with the same recipe
    from dnc_interactive.model import DUFM
    from dnc_interactive.recipes import Recipe
    from dnc_interactive.training import Trainer

    ref = DUFM(cfg)
    ref.load_matrices(H1, [W.detach() for W in ref.W])
    rec = Recipe(lr=1.0, momentum=0.9, momentum_boost=None, restarts=0, momentum_restart=False)
    t = Trainer(ref, rec, record_every=10, metrics_every=0, train_H1=False).run(95)
    assert t.loss == loss["value"].iloc[-1]


def test_train_head_on_features_at_the_closed_form_optimum():
    # independent check: the §2.3 construction's H1 is optimal, so a fresh head reaches L*
    from dnc_interactive.config import DUFMConfig

    cfg = DUFMConfig(num_classes=2, samples_per_class=10, depth=3, width=8, dtype="float64")
    H1, _ = theory.construct_optimum(cfg)
    model, hist = train_head_on_features(cfg.replace(seed=3), H1, steps=600)
    assert float(model.loss().total.detach()) == pytest.approx(theory.optimal_loss(cfg), rel=1e-5)
    assert torch.equal(model.H1, H1)


# ---------------------------------------------------------------------------- other data
def test_mnist1d_multiclass_run_reports_dnc_or_lower_rank(tmp_path):
    cfg = RealNetConfig(
        dataset="mnist1d",
        classes=(0, 1, 2),
        samples_per_class=10,
        mnist1d_samples=300,
        root=str(tmp_path),
        depth=3,
        epochs=300,
        record_every=50,
        device="cpu",
    )
    exp = RealNetExperiment(cfg).run()
    s = exp.summary()
    assert s["train_accuracy"] == 1.0 and s["num_classes"] == 3
    assert 0 <= s["test_accuracy"] <= 1
    for row in exp.layer_summary():
        assert row["nc1_trace"] < 1e-2
        assert row["solution"] == "DNC" or row["solution"].startswith("lower rank")
    # K = 3 < 4: GD found DNC in theory §5's DUFM runs; the gap is small and may be negative
    assert abs(s["relative_gap"]) < 0.05


def test_divergence_stops_with_a_message_and_keeps_history():
    cfg = RealNetConfig(
        **{**SMALL, "optimizer": "sgd", "lr": 1e4, "momentum": 0.0, "epochs": 50, "record_every": 1}
    )
    exp = RealNetExperiment(cfg)
    with pytest.warns(RuntimeWarning, match="diverged"):
        exp.run()
    assert exp.status == "diverged" and "Lower the learning rate" in exp.message
    assert exp.steps < 50 and len(exp.history) > 0
    assert all(torch.isfinite(p).all() for p in exp.head.parameters())
    assert exp.run().status == "diverged"  # stays stopped


def test_cnn_and_resnet20_shapes_and_size():
    net = ResNet20((3, 32, 32), 64)
    assert 0.26e6 < count_parameters(net) < 0.28e6  # He et al.: 0.27M
    assert net(torch.zeros(2, 3, 32, 32)).shape == (2, 64)
    assert SmallCNN((1, 40), 8)(torch.zeros(3, 1, 40)).shape == (3, 8)
    assert SmallCNN((1, 8, 8), 8)(torch.zeros(3, 1, 8, 8)).shape == (3, 8)


def test_resnet20_runs_on_cifar_format_files(tmp_path):
    rng = np.random.default_rng(0)
    d = tmp_path / "cifar-10-batches-py"
    d.mkdir()
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        labels = rng.integers(0, 3, size=8)
        imgs = rng.integers(0, 256, size=(8, 3, 32, 32), dtype=np.uint8)
        write_cifar_batch(d / name, imgs, labels)
    cfg = RealNetConfig(
        dataset="cifar10",
        classes=(0, 1),
        samples_per_class=4,
        root=str(tmp_path),
        backbone="resnet20",
        depth=2,
        epochs=3,
        batch_size=4,
        device="cpu",
    )
    data = prepare_data(cfg)
    assert data.x.shape[1:] == (3, 32, 32) and data.class_sizes == (4, 4)
    exp = RealNetExperiment(cfg, data=data).run()
    assert exp.steps == 6 and exp.status == "finished"
    assert math.isfinite(exp.loss)


def test_history_works_with_the_chart_builders(small_run):
    from dnc_interactive import charts

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        charts.loss_chart(small_run.history).to_dict()
        charts.metric_chart(small_run.history, ["nc1", "nc2_orth", "rank"]).to_dict()
        charts.gram_heatmap(metrics.gram_frame(small_run.to_dufm())).to_dict()


@pytest.mark.parametrize("kind", ["adam", "gd", "sgd"])
def test_optimizer_matches_torch_optim(kind):
    from dnc_interactive.realnets.experiment import _Optimizer

    gen = torch.Generator().manual_seed(0)
    a = [torch.randn(3, 4, generator=gen, dtype=torch.float64) for _ in range(2)]
    b = [t.clone().requires_grad_() for t in a]
    a = [t.clone().requires_grad_() for t in a]
    ours = _Optimizer(a, [1e-2, 0.0], kind, 0.9, 0.95)
    groups = [{"params": [b[0]], "weight_decay": 1e-2}, {"params": [b[1]], "weight_decay": 0.0}]
    if kind == "adam":
        ref = torch.optim.Adam(groups, lr=0.1, betas=(0.9, 0.95))
    else:
        ref = torch.optim.SGD(groups, lr=0.1, momentum=0.9)
    for step in range(5):
        for params in (a, b):
            loss = sum(((p - step) ** 3).sum() for p in params)
            for p in params:
                p.grad = None
            loss.backward()
        ours.step(0.1)
        ref.step()
    for x, y in zip(a, b, strict=True):
        torch.testing.assert_close(x.detach(), y.detach(), rtol=1e-12, atol=1e-12)
