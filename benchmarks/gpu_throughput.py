"""Benchmark: throughput of the paper network at 28 px under each speed switch.

For the paper tier's UNet (25.3M parameters, 28 px images padded to 32) it prints,
in one run on one device:

- training steps/s (the loss, backward and AdamW step of ``models/training.py``) in
  fp32 and in bf16 autocast (``TrainConfig.precision``);
- sampling network evaluations per second for fp32 and each switch of
  ``benchmark.speed.Speed`` (TF32, bf16, bf16 + channels_last, + torch.compile), called
  as the audit calls the network (``Speed.wrap``), at the batch the audit would choose
  from free memory (``Session.batch_size``) unless ``--batch`` is given;
- each one's ratio to fp32 in the same run, and achieved FLOP/s (FLOPs counted by
  ``torch.utils.flop_counter`` on the family's own call) as a fraction of the device's
  peak: measured on a large matmul in the same dtype in the same run, and, for a GPU
  whose datasheet figure is known, of that figure.

    python benchmarks/gpu_throughput.py [--device cuda] [--batch N] [--seconds 5]
    python benchmarks/gpu_throughput.py --device cpu --quick     # the CPU rehearsal

Targets on a GPU (issue 17): bf16 + channels_last sampling at least 2x fp32's
evaluations/s, and the sampler at least 40% of the bf16 peak at the chosen batch.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch

from benchmark import registry
from benchmark.batching import GPU_BATCH_CAP, image_bytes
from benchmark.config import ModelConfig
from benchmark.device import resolve_device
from benchmark.models.base import TrainedModel
from benchmark.models.training import build_network
from benchmark.plan import count_flops
from benchmark.speed import Speed, autocast, choose_batch, free_memory
from benchmark.tiers import PAPER_MODEL

# dense datasheet peaks, FLOP/s (no sparsity): bf16, and tf32 for the fp32 rows
DATASHEET = {
    "H200": {"bf16": 989e12, "fp32": 494e12},
    "H100": {"bf16": 989e12, "fp32": 494e12},
    "A100": {"bf16": 312e12, "fp32": 156e12},
    "L4": {"bf16": 121e12, "fp32": 60e12},
}

SAMPLING = {
    "fp32": Speed(),
    "tf32": Speed(tf32=True),
    "bf16": Speed("bf16"),
    "bf16+channels_last": Speed("bf16", channels_last=True),
    "bf16+channels_last+compile": Speed("bf16", channels_last=True, compile=True),
}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def rate(fn: Callable[[], object], device: torch.device, seconds: float, least: int) -> float:
    """Calls of ``fn`` per second over at least ``seconds`` and ``least`` calls (after
    ``least`` warm-up calls, at most two)."""
    for _ in range(min(2, least)):
        fn()
    sync(device)
    calls, start = 0, time.perf_counter()
    while calls < least or time.perf_counter() - start < seconds:
        fn()
        calls += 1
        if calls % 4 == 0:
            sync(device)
    sync(device)
    return calls / (time.perf_counter() - start)


def matmul_peak(dtype: torch.dtype, device: torch.device, n: int, seconds: float) -> float:
    """FLOP/s of an n x n matmul in ``dtype`` (TF32 allowed for fp32): the device's
    attainable peak, measured here."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    with Speed(tf32=True).backends():
        per_s = rate(lambda: a @ b, device, seconds, 3)
    return per_s * 2 * n**3


def datasheet_peak(device: torch.device) -> dict[str, float] | None:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in DATASHEET.items() if k in name), None)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="auto")
    p.add_argument("--family", default="ddim")
    p.add_argument(
        "--network", choices=("paper", "smoke"), default="paper", help="smoke: the small UNet"
    )
    p.add_argument("--channels", type=int, default=3, help="3: PathMNIST; 1: the grey sets")
    p.add_argument("--batch", type=int, default=None, help="sampling batch (default: fit)")
    p.add_argument("--train-batch", type=int, default=128, help="the paper tier's 128")
    p.add_argument("--seconds", type=float, default=5.0, help="timing per row")
    p.add_argument("--no-compile", action="store_true", help="skip the torch.compile row")
    p.add_argument(
        "--quick", action="store_true", help="tiny batches and counts (the CPU rehearsal)"
    )
    args = p.parse_args()
    device = resolve_device(args.device)
    seconds = 0.0 if args.quick else args.seconds
    least = 1 if args.quick else 10
    compile_row = not args.no_compile and not args.quick

    family_cls = registry.models.get(args.family)
    config = (
        ModelConfig(family=args.family, **PAPER_MODEL)
        if args.network == "paper"
        else family_cls.smoke_configs()[0]
    )
    family = family_cls(config)
    shape = (args.channels, 28, 28)
    net = build_network(family, shape, seed=0).to(device)
    flops = count_flops(family.predict_eps, net.eval(), torch.zeros((1, *shape), device=device),
                        family.noise.time_at(0.5))  # fmt: skip
    n_params = sum(p.numel() for p in net.parameters())

    if args.batch:
        batch = args.batch
    elif args.quick:
        batch = 2
    else:
        fast = TrainedModel(family, Speed().wrap(net, device), "probe", shape)
        cap = GPU_BATCH_CAP if device.type == "cuda" else 256
        batch = choose_batch(image_bytes(fast, device), free_memory(device), floor=4, cap=cap)
    train_batch = 2 if args.quick else args.train_batch
    peaks = {
        "fp32": matmul_peak(torch.float32, device, 256 if args.quick else 8192, seconds),
        "bf16": matmul_peak(torch.bfloat16, device, 256 if args.quick else 8192, seconds),
    }
    sheet = datasheet_peak(device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"device {name}; {args.family} {args.network} network, {n_params / 1e6:.1f}M parameters, "
          f"{flops / 1e9:.2f} GFLOP per image evaluation at {shape}")  # fmt: skip
    print(f"sampling batch {batch}, training batch {train_batch}; measured matmul peak "
          f"fp32/tf32 {peaks['fp32'] / 1e12:.1f} TFLOP/s, bf16 {peaks['bf16'] / 1e12:.1f}"
          + (f"; datasheet bf16 {sheet['bf16'] / 1e12:.0f}" if sheet else ""))  # fmt: skip

    rows = []
    # training: the loss, backward and AdamW step, fp32 and bf16 autocast
    for precision in ("fp32", "bf16"):
        train_net = build_network(family, shape, seed=0).to(device).train()
        opt = torch.optim.AdamW(train_net.parameters(), lr=2e-4)
        gen = torch.Generator(device=device).manual_seed(0)
        x0 = torch.rand((train_batch, *shape), generator=gen, device=device) * 2 - 1

        def step(train_net=train_net, opt=opt, gen=gen, x0=x0, precision=precision) -> None:
            with Speed(tf32=precision != "fp32").backends(), autocast(precision, device.type):
                loss = family.loss(train_net, x0, gen).float()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        per_s = rate(step, device, seconds, least)
        rows.append(("train", precision, per_s, "steps/s", per_s * 3 * flops * train_batch))
        del train_net, opt

    # sampling: network evaluations per second as the audit calls the network
    net.eval()
    x = torch.randn((batch, *shape), device=device)
    time_ = family.noise.time_at(0.5)
    for label, speed in SAMPLING.items():
        if speed.compile and not compile_row:
            continue
        wrapped = speed.wrap(net, device)

        def evaluate(wrapped=wrapped) -> None:
            with torch.no_grad():
                family.predict_eps(wrapped, x, time_)

        per_s = rate(evaluate, device, seconds, least) * batch
        rows.append(("sample", label, per_s, "evals/s", per_s * flops))

    base = {kind: next(r[2] for r in rows if r[0] == kind and r[1] == "fp32") for kind in
            ("train", "sample")}  # fmt: skip
    print(f"\n{'what':7} {'switches':28} {'rate':>12} {'':8} {'x fp32':>7} "
          f"{'TFLOP/s':>8} {'of peak':>8}" + (f" {'of sheet':>9}" if sheet else ""))  # fmt: skip
    for kind, label, per_s, unit, flop_s in rows:
        dtype = "bf16" if "bf16" in label else "fp32"
        line = (f"{kind:7} {label:28} {per_s:12.1f} {unit:8} {per_s / base[kind]:7.2f} "
                f"{flop_s / 1e12:8.2f} {flop_s / peaks[dtype]:8.1%}")  # fmt: skip
        if sheet:
            line += f" {flop_s / sheet[dtype]:9.1%}"
        print(line)


if __name__ == "__main__":
    main()
