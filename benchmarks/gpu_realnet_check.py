"""ResNet-20 + DUFM head on a GPU, on synthetic CIFAR-format data (theory §4.2).

The GPU machine has no network, so the script writes a synthetic CIFAR-10 in the real format
(python pickle batches ``cifar-10-batches-py/data_batch_1..5`` and ``test_batch``) to a
temporary directory and reads it back through the package's CIFAR-10 reader. Each class is a
fixed random smooth image plus per-sample noise and a random shift, so the task is learnable
but not trivial. Then:

1. the "cifar10" preset (ResNet-20, 4-layer head of width 64, lambda_H = 5e-6, lambda_W =
   weight decay = 5e-3, SGD lr 0.05 with momentum, batch 128, cosine decay) on 10 classes x
   ``--per-class`` samples for ``--epochs`` epochs: asserts it ran on the requested device,
   prints steps/s, accuracy, head loss vs the DUFM's L*, and per-layer NC1 / rank / solution;
   then the same with the digits recipe (Adam lr 1e-3, beta2 0.95) for comparison;
2. the full-size data (10 x 5 000 samples) for one epoch: steps/s at the paper's scale;
3. the command line, unchanged: ``dnc-interactive realnet --preset cifar10 --root ... --json``.

    python benchmarks/gpu_realnet_check.py                      # on cuda, about 1-3 minutes
    python benchmarks/gpu_realnet_check.py --device cpu --tiny  # a seconds-long smoke test
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from dnc_interactive.cli import main as cli_main
from dnc_interactive.realnets import RealNetExperiment, preset, write_cifar_batch


def write_synthetic_cifar(root: Path, per_class: int, test_per_class: int, seed: int = 0) -> None:
    """Write a learnable 10-class data set in the CIFAR-10 python format under ``root``."""
    rng = np.random.default_rng(seed)
    # smooth class templates: low-frequency random fields upsampled from 8x8
    low = rng.normal(0.0, 1.0, size=(10, 3, 8, 8))
    templates = np.kron(low, np.ones((1, 1, 4, 4)))

    def draw(n_per_class: int) -> tuple[np.ndarray, np.ndarray]:
        labels = np.repeat(np.arange(10), n_per_class)
        rng.shuffle(labels)
        shifts = rng.integers(-3, 4, size=(labels.size, 2))
        imgs = np.empty((labels.size, 3, 32, 32), dtype=np.uint8)
        for i, (c, (dx, dy)) in enumerate(zip(labels, shifts, strict=True)):
            x = np.roll(templates[c], (dx, dy), axis=(1, 2))
            x = x + rng.normal(0.0, 0.8, size=x.shape)
            imgs[i] = np.clip(128 + 40 * x, 0, 255).astype(np.uint8)
        return imgs, labels

    d = root / "cifar-10-batches-py"
    d.mkdir(parents=True, exist_ok=True)
    imgs, labels = draw(per_class)
    for b, idx in enumerate(np.array_split(np.arange(labels.size), 5), start=1):
        write_cifar_batch(d / f"data_batch_{b}", imgs[idx], labels[idx])
    t_imgs, t_labels = draw(test_per_class)
    write_cifar_batch(d / "test_batch", t_imgs, t_labels)


def _device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def train_and_report(
    root: Path, device: str, per_class: int, epochs: int, tiny: bool, **extra
) -> dict:
    changes: dict = dict(root=str(root), device=device, samples_per_class=per_class)
    changes["epochs"] = epochs
    changes.update(extra)
    if tiny:
        changes.update(classes=(0, 1), batch_size=8, record_every=2, eval_batch_size=64)
    config = preset("cifar10", **changes)
    t0 = time.perf_counter()
    exp = RealNetExperiment(config)
    setup = time.perf_counter() - t0
    param_device = next(exp.backbone.parameters()).device
    assert param_device.type == torch.device(device).type, (param_device, device)
    assert exp.data.x.device.type == param_device.type
    _sync(device)
    t1 = time.perf_counter()
    exp.run()
    _sync(device)
    train_s = time.perf_counter() - t1
    s = exp.summary()
    print(
        f"[1] {config.optimizer} lr {config.lr:g}: ran on {param_device}"
        f" ({_device_name(param_device)})"
        f": K={s['num_classes']}, n_k={s['class_sizes'][0]}, {s['steps']} steps in"
        f" {train_s:.1f} s ({s['steps'] / train_s:.1f} steps/s incl. "
        f"{len(exp.history['step'].unique())} measurement passes; setup {setup:.1f} s)"
    )
    print(
        f"    status {s['status']}; train accuracy {s['train_accuracy']:.2%}, test accuracy"
        f" {s['test_accuracy']:.2%}; head loss {s['head_loss']:.6f}, L* {s['optimal_loss']:.6f},"
        f" relative gap {s['relative_gap']:+.3e}"
    )
    for r in exp.layer_summary():
        print(
            f"    layer {r['layer']}: NC1 {r['nc1']:.2e}, NC1' {r['nc1_trace']:.2e},"
            f" NC2(orth) {r['nc2_orth']:.2e}, rank {r['rank']}/{r['pre_rank']} (post/pre),"
            f" {r['solution']}"
        )
    return {
        "steps_per_s": s["steps"] / train_s,
        **{k: s[k] for k in ("train_accuracy", "relative_gap", "status")},
    }


def full_scale_speed(root: Path, device: str) -> float:
    config = preset("cifar10", root=str(root), device=device, epochs=2, record_every=10**9)
    exp = RealNetExperiment(config)
    exp.run(1)  # includes warm-up of the kernels; the final measurement pass is separate
    _sync(device)
    steps0, t0 = exp.steps, time.perf_counter()
    exp.run(1)
    _sync(device)
    dt = time.perf_counter() - t0
    rate = (exp.steps - steps0) / dt
    print(
        f"[2] full size: N = {exp.N} (10 x {exp.N // 10}), batch {config.batch_size}: one epoch of"
        f" {exp.steps - steps0} steps plus one measurement pass in {dt:.1f} s"
        f" ({rate:.1f} steps/s, {exp.N / dt:.0f} samples/s)"
    )
    return rate


def cli_check(root: Path, device: str, tiny: bool, per_class: int) -> None:
    argv = ["realnet", "--preset", "cifar10", "--root", str(root), "--device", device, "--json"]
    argv += ["--epochs", "1"]
    if tiny:
        argv += ["--classes", "0,1", "--samples-per-class", "8", "--batch-size", "8"]
    else:
        argv += ["--samples-per-class", str(min(500, per_class))]
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = cli_main(argv)
    result = json.loads(buf.getvalue())
    assert code == 0 and result["device"].startswith(device.split(":")[0]), result["device"]
    print(
        f"[3] CLI `dnc-interactive {' '.join(argv[:4])} ...`: exit {code}, device"
        f" {result['device']}, {result['steps']} steps, train accuracy"
        f" {result['train_accuracy']:.2%}, relative gap {result['relative_gap']:+.2e}"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--tiny", action="store_true", help="a seconds-long smoke test (2 classes)")
    p.add_argument("--per-class", type=int, default=None, help="samples per class in [1]")
    p.add_argument("--epochs", type=int, default=None, help="epochs in [1]")
    p.add_argument(
        "--full-per-class", type=int, default=5000, help="samples per class written for [2]"
    )
    args = p.parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("--device cuda requested but torch.cuda.is_available() is False")
    per_class = args.per_class or (8 if args.tiny else 1000)
    epochs = args.epochs or (2 if args.tiny else 30)
    t0 = time.perf_counter()
    print(f"torch {torch.__version__}, device {args.device}")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        full = not args.tiny
        written = max(args.full_per_class, per_class) if full else per_class
        write_synthetic_cifar(root, per_class=written, test_per_class=100)
        print(f"synthetic CIFAR-format data written to {root} ({time.perf_counter() - t0:.1f} s)")
        train_and_report(root, args.device, per_class, epochs, args.tiny)
        # the digits recipe (Adam, beta2 0.95) on the same data, for comparison
        train_and_report(
            root,
            args.device,
            per_class,
            epochs,
            args.tiny,
            optimizer="adam",
            lr=1e-3,
            momentum=0.9,
            beta2=0.95,
        )
        if full:
            full_scale_speed(root, args.device)
        cli_check(root, args.device, args.tiny, per_class)
    print(f"done in {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
