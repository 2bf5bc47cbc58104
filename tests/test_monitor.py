"""dnc_interactive.monitor: DNC metrics of any torch network, streamed through forward hooks."""

from __future__ import annotations

import math

import altair as alt
import pandas as pd
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import dnc_interactive
from dnc_interactive import charts, metrics, theory
from dnc_interactive.config import DUFMConfig
from dnc_interactive.monitor import Monitor, monitor
from dnc_interactive.realnets import ResNet20
from dnc_interactive.training import HISTORY_COLUMNS

K, N_PER, D = 3, 30, 12


def _data(dtype=torch.float64, seed=0, shuffle=True):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(K).repeat_interleave(N_PER)
    if shuffle:
        y = y[torch.randperm(y.numel(), generator=g)]
    X = torch.randn(y.numel(), D, generator=g, dtype=dtype)
    X[:, :K] += 2.0 * nn.functional.one_hot(y, K).to(dtype)
    return X, y


class MLP(nn.Module):
    """A user network: named layers, ReLUs, a final Linear (the classifier)."""

    def __init__(self, width=24, bias=True, inplace=False):
        super().__init__()
        self.fc1 = nn.Linear(D, width)
        self.act1 = nn.ReLU(inplace=inplace)
        self.fc2 = nn.Linear(width, width)
        self.act2 = nn.ReLU(inplace=inplace)
        self.fc3 = nn.Linear(width, width)
        self.act3 = nn.ReLU(inplace=inplace)
        self.out = nn.Linear(width, K, bias=bias)

    def forward(self, x):
        return self.out(self.act3(self.fc3(self.act2(self.fc2(self.act1(self.fc1(x)))))))


def _net(dtype=torch.float64, **kwargs):
    torch.manual_seed(0)
    return MLP(**kwargs).to(dtype)


def _features(model, X, names):
    """Direct (non-streaming) features: module outputs and inputs, one forward pass."""
    outs, ins = {}, {}
    modules = dict(model.named_modules())

    def keep(name, args, out):
        outs[name], ins[name] = out.clone(), args[0].clone()

    hooks = [modules[n].register_forward_hook(lambda m, a, o, n=n: keep(n, a, o)) for n in names]
    model.eval()
    with torch.no_grad():
        model(X)
    for h in hooks:
        h.remove()
    return outs, ins


def _value(h, layer, metric, kind=None, step=None):
    sel = (h["layer"] == layer) & (h["metric"] == metric)
    if kind is not None:
        sel &= h["kind"] == kind
    if step is not None:
        sel &= h["step"] == step
    vals = h.loc[sel, "value"]
    assert len(vals) == 1, (layer, metric, kind, len(vals))
    return float(vals.iloc[0])


# ---------------------------------------------------------------------- the numbers
def test_streamed_metrics_equal_the_one_shot_functions_in_float64():
    X, y = _data()
    net = _net()
    mon = monitor(net, (X, y), layers=["fc1", "act1", "fc2", "act3"], batch_size=7)
    mon.record()
    h = mon.history
    assert list(h.columns) == list(HISTORY_COLUMNS)
    outs, ins = _features(net, X, ["fc1", "act1", "fc2", "act3", "out"])
    assert mon.layer_names == {1: "fc1", 2: "act1", 3: "fc2", 4: "act3", 5: "output of out"}
    for j, name in [(1, "fc1"), (2, "act1"), (3, "fc2"), (4, "act3")]:
        F = outs[name].T
        M = metrics.class_means(F, y)
        direct = {
            "nc1": metrics.nc1(F, y),
            "nc1_trace": metrics.nc1_trace(F, y),
            "nc2_orth": metrics.nc2_orthogonal(M),
            "nc2_etf": metrics.nc2_etf(M),
            "equinorm": metrics.equinorm(M),
            "coherence": metrics.coherence(M),
            "rank": metrics.rank(M),
            "mean_norm": float(torch.linalg.vector_norm(M, dim=0).mean()),
        }
        for m in metrics.FEATURE_METRICS:
            if m in direct:
                assert _value(h, j, m, "post") == pytest.approx(direct[m], rel=1e-10, abs=1e-12)
    # DNC3 of fc2 (a monitored Linear, with bias: centred means) sits with its input, act1;
    # fc1 reads the raw inputs, which are no layer: no DNC3 of fc1
    Min = metrics.class_means(outs["act1"].T, y)
    ref = metrics.dnc3_subspace(net.fc2.weight, Min - Min.mean(1, keepdim=True))
    assert _value(h, 2, "nc3", "weight") == pytest.approx(ref, rel=1e-10)
    for j in (1, 3):
        assert not ((h["layer"] == j) & (h["kind"] == "weight")).any()
    # the classifier's input is act3's output: NC3 self-duality at layer 4 (bias: centred)
    H = outs["act3"].T
    M = metrics.class_means(H, y)
    ref = metrics.nc3_self_duality(net.out.weight, M - M.mean(1, keepdim=True))
    assert _value(h, 4, "nc3", "weight") == pytest.approx(ref, rel=1e-10)
    Z = outs["out"].T
    ncc = ((M * M).sum(0)[:, None] - 2 * M.T @ H).argmin(0)
    mismatch = float((Z.argmax(0) != ncc).double().mean())
    assert _value(h, 5, "nc4", "output") == pytest.approx(mismatch)
    MZ = metrics.class_means(Z, y)
    for k in range(K):
        assert _value(h, 5, f"q_{k}", "output") == pytest.approx(float(MZ[k, k]), rel=1e-10)
    acc = float((Z.argmax(0) == y).double().mean())
    assert _value(h, 0, "accuracy", "model") == pytest.approx(acc)


def test_bias_free_classifier_uses_uncentred_means_like_the_dufm():
    X, y = _data()
    net = _net(bias=False)
    mon = monitor(net, (X, y), layers=["act3"], batch_size=16)
    mon.record()
    outs, _ = _features(net, X, ["act3"])
    M = metrics.class_means(outs["act3"].T, y)
    ref = metrics.nc3_self_duality(net.out.weight, M)
    assert _value(mon.history, 1, "nc3", "weight") == pytest.approx(ref, rel=1e-10)
    ref_nc4 = metrics.nc4_ncc_mismatch(outs["act3"].T, y, net.out.weight)
    assert _value(mon.history, 2, "nc4", "output") == pytest.approx(ref_nc4)


def test_tensors_dataloader_and_a_list_of_batches_give_the_same_numbers():
    X, y = _data()
    net = _net()
    layers = ["fc1", "act2", "fc3"]
    hist = []
    for data in (
        (X, y),
        DataLoader(TensorDataset(X, y), batch_size=16, shuffle=False),
        [(X[i : i + 40], y[i : i + 40]) for i in range(0, len(y), 40)],
        (X.numpy(), y.numpy()),
    ):
        mon = monitor(net, data, layers=layers, batch_size=25)
        mon.record(step=3)
        hist.append(mon.history)
    for other in hist[1:]:
        pd.testing.assert_frame_equal(hist[0].drop(columns="value"), other.drop(columns="value"))
        assert other["value"].to_numpy() == pytest.approx(
            hist[0]["value"].to_numpy(), rel=1e-9, abs=1e-12, nan_ok=True
        )


def test_a_float32_model_on_a_dataloader_with_extra_batch_items():
    X, y = _data(dtype=torch.float32)
    net = _net(dtype=torch.float32)
    idx = torch.arange(len(y))
    loader = DataLoader(TensorDataset(X.double(), y, idx), batch_size=32)  # x cast to float32
    mon = monitor(net, loader, layers=["act1"], num_classes=K)
    mon.record()
    assert mon.class_sizes == (N_PER,) * K
    assert math.isfinite(_value(mon.history, 1, "nc1", "post"))


# ---------------------------------------------------------------------- collapse in training
def test_a_user_mlp_trained_briefly_collapses_more_at_later_layers():
    X, y = _data(dtype=torch.float32, seed=1)
    torch.manual_seed(0)
    net = MLP(width=32)
    Y = nn.functional.one_hot(y, K).float()
    params = list(net.parameters())
    velocity = [torch.zeros_like(p) for p in params]
    mon = monitor(net, (X, y), layers=["act1", "act2", "act3"], every=50)
    for step in range(201):  # heavy-ball GD by hand (torch.optim's first use takes seconds)
        mon(step)
        loss = 0.5 * (net(X) - Y).pow(2).sum(1).mean()
        loss.backward()
        with torch.no_grad():
            for p, v in zip(params, velocity):
                v.mul_(0.9).add_(p.grad)
                p.sub_(0.1 * v)
                p.grad = None
    h = mon.history
    assert sorted(h["step"].unique()) == [0, 50, 100, 150, 200]
    end = mon.report()
    nc1 = end.set_index("name")["nc1_trace"]
    assert nc1["act3"] < nc1["act2"] < nc1["act1"], "later layers are more collapsed"
    first = _value(h, 3, "nc1_trace", "post", step=0)
    assert nc1["act3"] < first / 10, "the last hidden layer collapses during training"
    assert _value(h, 0, "accuracy", step=200) == 1.0
    assert _value(h, 4, "nc4", step=200) == 0.0
    assert net.training, "the monitor restores train mode"
    # the same charts as a DUFM run
    assert isinstance(charts.metric_chart(h, ["nc1", "nc2_orth", "nc3"]), alt.ConcatChart)
    assert mon.show().to_dict()["title"]["text"].startswith("layers: 1 = act1")


def test_resnet20_backbone_on_tiny_random_images_records_the_chosen_layers():
    torch.manual_seed(0)
    net = ResNet20((3, 32, 32), out_dim=K)
    X = torch.randn(20, 3, 32, 32)
    y = torch.arange(20) % K
    bn = net.bn.running_mean.clone()
    mon = monitor(net, (X, y), layers=["conv", "layers.0", "layers.8"], batch_size=8)
    mon.record()
    info = mon.layers.set_index("name")
    assert list(info.index) == ["conv", "layers.0", "layers.8", "input of fc", "output of fc"]
    assert info.loc["layers.0", "shape"] == (16, 32, 32)
    assert info.loc["layers.0", "reduction"] == "mean over spatial dims"  # 16384 > max_dim
    assert info.loc["layers.8", "dim"] == 64
    h = mon.history
    for j in (1, 2, 3, 4):
        got = set(h.loc[(h["layer"] == j) & (h["kind"] == "post"), "metric"])
        assert got == set(metrics.FEATURE_METRICS)
    assert ((h["layer"] == 4) & (h["metric"] == "nc3")).sum() == 1  # fc's weight vs its input
    assert set(h.loc[h["layer"] == 5, "metric"]) == {"nc4", *(f"q_{k}" for k in range(K))}
    assert torch.equal(net.bn.running_mean, bn), "eval mode: batch norm statistics unchanged"
    assert all(p.grad is None for p in net.parameters())
    # the pooled input of fc is the spatial mean of layers.8's output
    assert _value(h, 3, "nc1", "post") == pytest.approx(_value(h, 4, "nc1", "post"), rel=1e-5)
    # smaller images: the last block's 64 x 4 x 4 map is flattened (<= max_dim)
    mon2 = monitor(net, (X[:, :, :16, :16], y), layers=["layers.8"])
    mon2.record()
    assert mon2.layers.loc[0, "dim"] == 64 * 4 * 4
    assert mon2.layers.loc[0, "reduction"] == "flatten"


def test_inplace_relu_keeps_pre_activations_apart_from_the_classifier_input():
    X, y = _data()
    net = _net(inplace=True)
    mon = monitor(net, (X, y), layers=["fc3"], batch_size=20)
    mon.record()
    assert mon.layer_names == {1: "fc3", 2: "input of out", 3: "output of out"}
    ref = _net()  # same weights, out-of-place ReLUs
    outs, _ = _features(ref, X, ["fc3", "act3"])
    h = mon.history
    assert _value(h, 1, "nc1", "post") == pytest.approx(metrics.nc1(outs["fc3"].T, y), rel=1e-10)
    assert _value(h, 2, "nc1", "post") == pytest.approx(metrics.nc1(outs["act3"].T, y), rel=1e-10)


def test_every_records_on_the_grid_and_steps_default_to_counters():
    X, y = _data()
    mon = monitor(_net(), (X, y), layers=["act1"], every=2, nc4=False)
    for _ in range(5):
        mon()
    assert sorted(mon.history["step"].unique()) == [0, 2, 4]
    assert mon(7) == [] and mon(8)
    mon.record(loss=0.5)  # record(): always; default step = number of earlier records
    h = mon.history
    assert _value(h, 0, "loss", "model", step=4) == 0.5
    assert "nc4" not in set(h["metric"])


def test_layers_given_as_modules_and_the_default_layers():
    X, y = _data()
    net = _net()
    mon = monitor(net, (X, y), layers=[net.fc1, net.act1])
    assert list(mon._modules) == ["fc1", "act1"]
    seq = nn.Sequential(nn.Linear(D, 8), nn.ReLU(), nn.Linear(8, K)).double()
    mon = monitor(seq, (X, y))
    assert list(mon._modules) == ["0", "1"] and mon.classifier == "2"
    mon.record()
    assert mon.layer_names[2] == "1" and mon.layer_names[3] == "output of 2"


def test_the_package_attribute_and_the_module_are_both_callable():
    import importlib

    X, y = _data()
    assert isinstance(dnc_interactive.monitor(_net(), (X, y), layers="act1"), Monitor)
    module = importlib.import_module("dnc_interactive.monitor")
    assert isinstance(module(_net(), (X, y), layers="act1"), Monitor)
    with monitor(_net(), (X, y), layers="act1") as mon:
        mon.record()
    assert mon.status == "closed"


# ---------------------------------------------------------------------- the DUFM comparison
def test_dufm_comparison_of_a_bias_free_head_matches_a_direct_computation():
    X, y = _data()
    y = y.clone()
    y[:5] = 0  # imbalanced classes
    net = _net(bias=False)
    lam_H, lam_W = 1e-3, (2e-3, 5e-4)
    mon = monitor(net, (X, y), layers=["act2"])
    cmp = mon.dufm_comparison(lambda_H=lam_H, lambda_W=lam_W, head=["fc3", "out"])
    outs, ins = _features(net, X, ["fc3", "out"])
    H1, Z = ins["fc3"], outs["out"]
    N = len(y)
    fit = 0.5 * (Z - nn.functional.one_hot(y, K).double()).pow(2).sum() / N
    reg = 0.5 * lam_H * H1.pow(2).sum()
    reg += 0.5 * (lam_W[0] * net.fc3.weight.pow(2).sum() + lam_W[1] * net.out.weight.pow(2).sum())
    assert cmp.head_loss == pytest.approx(float((fit + reg).detach()), rel=1e-12)
    sizes = tuple(torch.bincount(y).tolist())
    config = DUFMConfig(
        num_classes=K,
        samples_per_class=sizes,
        depth=2,
        width=(24, 24),
        lambda_H=lam_H,
        lambda_W=lam_W,
    )
    assert cmp.class_sizes == sizes and cmp.widths == (24, 24)
    assert cmp.optimal_loss == pytest.approx(theory.optimal_loss(config), rel=1e-14)
    assert cmp.relative_gap == pytest.approx((cmp.head_loss - cmp.optimal_loss) / cmp.optimal_loss)
    assert cmp.optimality == theory.dnc_optimality(config)
    assert cmp.has_bias, "fc3 has a bias (the theorem's head has none): flagged"
    assert cmp.summary()["L"] == 2
    assert mon.history.empty, "a comparison records nothing"


def test_lambdas_add_the_head_loss_and_l_star_to_the_history():
    X, y = _data(dtype=torch.float32)
    net = _net(dtype=torch.float32)
    mon = monitor(net, (X, y), layers=["act3"], lambda_H=1e-3, lambda_W=1e-3)
    mon.record(lr=0.1)
    mon.record()
    h = mon.history
    cmp = mon.dufm_comparison()
    assert cmp.has_bias and cmp.head == ("out",)
    assert _value(h, 0, "loss", step=1) == pytest.approx(cmp.head_loss, rel=1e-6)
    assert _value(h, 0, "optimal_loss", step=1) == pytest.approx(cmp.optimal_loss)
    assert mon.loss == pytest.approx(cmp.head_loss, rel=1e-6) and mon.gap > 0
    assert isinstance(charts.loss_chart(h), alt.HConcatChart)
    assert isinstance(mon.show(), alt.VConcatChart)
    with pytest.raises(ValueError, match="'loss' is recorded by the monitor"):
        mon.record(loss=1.0)


def test_live_chart_is_fed_by_later_records():
    X, y = _data()
    mon = monitor(_net(), (X, y), layers=["act1", "act2"])
    with pytest.raises(ValueError, match="call record"):
        mon.live_chart()
    mon.record()
    chart = mon.live_chart()
    before = len(chart.store)
    mon.record()
    assert len(chart.store) > before > 0
    mon.close()
    held = len(chart.store)
    mon.record()
    assert len(chart.store) == held, "a closed monitor feeds no chart"


# ---------------------------------------------------------------------- bad input
def test_bad_input_raises_value_errors_naming_the_argument():
    X, y = _data()
    net = _net()
    with pytest.raises(ValueError, match=r"layers: unknown layer name 'fc9'.*'fc1', 'act1'"):
        monitor(net, (X, y), layers=["fc9"])
    with pytest.raises(ValueError, match="layers: the module Linear is not a submodule"):
        monitor(net, (X, y), layers=[nn.Linear(2, 2)])
    with pytest.raises(ValueError, match="given more than once"):
        monitor(net, (X, y), layers=["fc1", "fc1"])
    with pytest.raises(ValueError, match="labels must be integer class indices.*float"):
        monitor(net, (X, y.double()), layers="fc1")
    with pytest.raises(ValueError, match="one-hot labels"):
        monitor(net, (X, nn.functional.one_hot(y)), layers="fc1")
    with pytest.raises(ValueError, match="one class only"):
        monitor(net, (X, torch.zeros_like(y)), layers="fc1")
    with pytest.raises(ValueError, match=r"class\(es\) \[1\] have no samples"):
        monitor(net, (X, y * 2 % 4), layers="fc1")
    with pytest.raises(ValueError, match="data is empty"):
        monitor(net, (X[:0], y[:0]), layers="fc1")
    with pytest.raises(ValueError, match="data is empty"):
        monitor(net, DataLoader(TensorDataset(X[:0], y[:0]), batch_size=4), layers="fc1")
    with pytest.raises(ValueError, match="data is empty"):
        monitor(net, [], layers="fc1", num_classes=K).record()
    with pytest.raises(ValueError, match="data is an iterator"):
        monitor(net, iter([(X, y)]), layers="fc1")
    with pytest.raises(ValueError, match="data: X has shape"):
        monitor(net, (X, y[:-1]), layers="fc1")
    with pytest.raises(ValueError, match="data=Tensor is not valid"):
        monitor(net, X, layers="fc1")
    with pytest.raises(ValueError, match="every batch must be an"):
        monitor(net, [X], layers="fc1", num_classes=K).record()
    with pytest.raises(ValueError, match="model=.* is not valid"):
        monitor("net", (X, y))
    with pytest.raises(ValueError, match="num_classes=1 is not valid"):
        monitor(net, (X, y), num_classes=1)
    with pytest.raises(ValueError, match=r"labels must lie in 0\.\.1"):
        monitor(net, (X, y), layers="fc1", num_classes=2)
    with pytest.raises(ValueError, match=r"data: class\(es\) \[3\] have no samples"):
        monitor(net, [(X, y)], layers="fc1", num_classes=4).record()
    with pytest.raises(ValueError, match="every=0 is not valid"):
        monitor(net, (X, y), every=0)
    with pytest.raises(ValueError, match="spatial='pool' is not valid"):
        monitor(net, (X, y), spatial="pool")
    with pytest.raises(ValueError, match="classifier 'fc1' is not valid"):
        monitor(net, (X, y), classifier="fc1")
    with pytest.raises(ValueError, match="must be given together"):
        monitor(net, (X, y), lambda_H=1e-3)
    with pytest.raises(ValueError, match="lambda_W has 1 entries but the head has 2"):
        monitor(net, (X, y), head=["fc3", "out"], lambda_H=1e-3, lambda_W=[1e-3])
    with pytest.raises(ValueError, match="lambda_H=-1 is not valid"):
        monitor(net, (X, y), lambda_H=-1, lambda_W=1e-3)
    with pytest.raises(ValueError, match="head: 'act1' is not a linear layer"):
        monitor(net, (X, y), head=["act1", "out"], lambda_H=1e-3, lambda_W=1e-3)
    seq = nn.Sequential(nn.Linear(D, 8), nn.ReLU(), nn.Linear(8, 6), nn.ReLU(), nn.Linear(6, K))
    with pytest.raises(ValueError, match="head: '4' takes 6 inputs but '0' has 8 outputs"):
        monitor(seq.double(), (X, y), head=["0", "4"], lambda_H=1e-3, lambda_W=1e-3)
    with pytest.raises(ValueError, match="head ends with 'fc3' but the classifier"):
        monitor(net, (X, y), head=["fc3"], classifier="out", lambda_H=1e-3, lambda_W=1e-3)
    with pytest.raises(ValueError, match="lambda_H and lambda_W are needed"):
        monitor(net, (X, y), layers="fc1").dufm_comparison()
    with pytest.raises(ValueError, match="nothing to monitor"):
        monitor(net, (X, y), layers=[], classifier=None)
    with pytest.raises(ValueError, match="more than max_dim=8"):
        monitor(net, (X, y), layers="fc1", max_dim=8).record()
    with pytest.raises(ValueError, match="nothing recorded yet"):
        monitor(net, (X, y), layers="fc1").report()


def test_layers_that_do_not_run_once_per_batch_are_reported():
    X, y = _data()

    class Shared(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(D, D)
            self.unused = nn.Linear(D, D)
            self.out = nn.Linear(D, K)

        def forward(self, x):
            return self.out(self.fc(self.fc(x)))

    net = Shared().double()
    with pytest.raises(ValueError, match="layer 'fc' ran 2 times in one forward pass"):
        monitor(net, (X, y), layers="fc").record()
    with pytest.raises(ValueError, match="layer 'unused' did not run"):
        monitor(net, (X, y), layers="unused").record()

    class Pair(nn.Module):
        def forward(self, x):
            return x, x

    wrapped = nn.Sequential(Pair())
    with pytest.raises(ValueError, match="layer '0' returned a tuple"):
        monitor(wrapped, (X, y), layers="0", classifier=None).record()


def test_non_finite_features_give_nan_rows_not_an_error():
    X, y = _data()
    net = _net()
    with torch.no_grad():
        net.fc2.weight.fill_(math.inf)
    mon = monitor(net, (X, y), layers=["act1", "act2"])
    mon.record()
    h = mon.history
    assert math.isfinite(_value(h, 1, "nc1", "post"))
    assert math.isnan(_value(h, 2, "nc1", "post"))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_a_model_on_the_gpu_gets_its_batches_moved_there():
    X, y = _data()
    net = _net().cuda()
    mon = monitor(net, (X, y), layers=["fc1", "act3"], batch_size=16)
    mon.record()
    ref = monitor(_net(), (X, y), layers=["fc1", "act3"], batch_size=16)
    ref.record()
    assert mon.history["value"].to_numpy() == pytest.approx(
        ref.history["value"].to_numpy(), rel=1e-9, abs=1e-12, nan_ok=True
    )


# ---------------------------------------------------------------------- PyTorch Lightning
@pytest.mark.slow
# Lightning 2.6 with torch 2.13 warns about its own use of torch's pytree (not our code)
@pytest.mark.filterwarnings("ignore:.*LeafSpec.*:FutureWarning")
def test_lightning_callback_records_during_fit():
    pytest.importorskip("lightning")
    import lightning.pytorch as pl

    from dnc_interactive.integrations.lightning import DNCMonitor

    X, y = _data(dtype=torch.float32)

    class Module(pl.LightningModule):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.net = MLP()

        def forward(self, x):
            return self.net(x)

        def training_step(self, batch, _idx):
            x, t = batch
            return nn.functional.cross_entropy(self(x), t)

        def configure_optimizers(self):
            return torch.optim.Adam(self.parameters(), lr=1e-2)

    loader = DataLoader(TensorDataset(X, y), batch_size=30)
    cb = DNCMonitor(loader, layers=["net.act1", "net.act3"], every=2)
    assert cb.history.empty
    trainer = pl.Trainer(
        max_epochs=4,
        callbacks=[cb],
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(Module(), loader)
    h = cb.history
    assert sorted(h["step"].unique()) == [0, 2, 4]
    assert cb.monitor.layer_names[1] == "net.act1" and cb.monitor.classifier == "net.out"
    assert _value(h, 2, "nc1", "post", step=4) < _value(h, 2, "nc1", "post", step=0)
    with pytest.raises(ValueError, match="unit='batch' is not valid"):
        DNCMonitor(loader, unit="batch")
