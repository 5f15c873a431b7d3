"""The training loop every family shares: AdamW, EMA, checkpoints, resume, progress.

The family supplies the network and the loss (its noise process); this module
supplies the rest. A checkpoint (model, EMA, optimizer, scheduler, step, RNG
state, loss history) is written atomically every ``checkpoint_every`` steps and
on Ctrl-C; a rerun resumes from it and, on the CPU, ends with the same weights
as an uninterrupted run.

A training-time mitigation (DP-SGD) changes the loop through a ``TrainingHook``:
how a batch is drawn, the network the loss sees, the optimizer step, and what it
reports (its privacy guarantee).
"""

from __future__ import annotations

import copy
import logging
import math
import signal
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import nn

from benchmark import registry
from benchmark.cache import atomic_torch_save
from benchmark.config import TrainConfig
from benchmark.errors import CheckpointError, ConfigError
from benchmark.models.base import ModelFamily
from benchmark.progress import bar
from benchmark.speed import autocast

log = logging.getLogger("memobench.train")

LOSS_LOG_EVERY = 10


class EMA:
    """Exponential moving average of a network's parameters and buffers.

    The decay warms up as min(decay, (1 + step) / (10 + step)), as in diffusers' EMAModel.
    """

    def __init__(self, net: nn.Module, decay: float) -> None:
        self.decay = decay
        self.shadow = copy.deepcopy(net).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, net: nn.Module, step: int) -> None:
        d = min(self.decay, (1 + step) / (10 + step))
        shadow = list(self.shadow.parameters())
        params = [p.detach() for p in net.parameters()]
        if len(shadow) != len(params):
            raise ValueError(f"EMA of {len(shadow)} tensors updated from {len(params)}")
        torch._foreach_lerp_(shadow, params, 1 - d)  # one kernel launch per group on a GPU
        for s, b in zip(self.shadow.buffers(), net.buffers(), strict=True):
            s.copy_(b)


def build_network(family: ModelFamily, image_shape: tuple[int, int, int], seed: int) -> nn.Module:
    """The family's network, initialised from ``seed`` without touching the global RNG."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return family.build_network(image_shape)


def lr_factor(cfg: TrainConfig, step: int) -> float:
    """Linear warm-up, then constant or cosine decay to 0 at ``cfg.steps``."""
    warm = min(1.0, (step + 1) / max(1, cfg.warmup_steps))
    if cfg.lr_schedule == "cosine":
        return warm * 0.5 * (1 + math.cos(math.pi * min(step, cfg.steps) / cfg.steps))
    return warm


class TrainingHook:
    """How a training-time mitigation changes the loop (``Mitigation.training_hook``).

    The identity: uniform batches of ``cfg.batch_size``, the network and optimizer as
    they are. A hook's state (an accountant, a noise generator) goes into the checkpoint
    through ``state_dict``, so an interrupted run resumes with the same guarantee.
    """

    def attach(
        self, net: nn.Module, opt: torch.optim.Optimizer, device: torch.device
    ) -> tuple[nn.Module, torch.optim.Optimizer]:
        """The network the loss calls and the optimizer that steps (wrapped if need be)."""
        return net, opt

    def batch(self, n: int, batch_size: int, gen: torch.Generator) -> torch.Tensor:
        """The indices of the next batch among ``n`` training images."""
        return torch.randint(0, n, (batch_size,), generator=gen, device=gen.device)

    def empty_batch(self) -> None:
        """Prepare the optimizer step of an empty batch (only a hook's ``batch`` can give
        one; DP-SGD then steps on its noise alone)."""
        raise RuntimeError("an empty training batch")

    def after_step(self) -> None:
        """Called once per optimizer step (an accountant counts it)."""

    def detach(self) -> None:
        """Undo ``attach`` (hooks removed) once training is done."""

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what ``state_dict`` gave."""

    def stats(self) -> dict[str, Any]:
        """What the hook reports beside the training stats (e.g. ``dp_epsilon``)."""
        return {}


def training_hook(cfg: TrainConfig, n_train: int) -> TrainingHook:
    """The hook of ``cfg.mitigation`` (a registered mitigation), or the identity."""
    if cfg.mitigation is None:
        return TrainingHook()

    mitigation = registry.mitigations.get(cfg.mitigation.name)(**cfg.mitigation.kwargs)
    hook = mitigation.training_hook(cfg, n_train)
    if hook is None:
        raise ConfigError(
            f"TrainConfig.mitigation names {cfg.mitigation.name!r}, which does not change "
            f"training; leave TrainConfig.mitigation unset for it"
        )
    return hook


class TrainingInterrupted(Exception):
    """Raised after a checkpoint was written because training was stopped early."""


def train(
    family: ModelFamily,
    images: torch.Tensor,
    cfg: TrainConfig,
    checkpoint_dir: Path,
    device: str | torch.device = "cpu",
    progress: bool = True,
    stop_after: int | None = None,
    position: int | None = None,
) -> tuple[nn.Module, dict[str, Any]]:
    """Train ``family`` on ``images`` (N, C, H, W) in [-1, 1].

    Args:
        family: supplies ``build_network`` and ``loss``.
        images: the training set.
        cfg: optimisation settings.
        checkpoint_dir: where ``last.pt`` is written and resumed from.
        device: torch device.
        progress: show a tqdm bar.
        stop_after: stop (as if killed) once this global step is done, without
            a final checkpoint; for testing resume.
        position: line of the progress bar (several trainings at once).

    Returns:
        The EMA network (eval mode, on ``device``) and training stats.
    """
    device = torch.device(device)
    image_shape = tuple(images.shape[1:])
    net = build_network(family, image_shape, cfg.seed).to(device)
    ema = EMA(net, cfg.ema_decay)
    # fused AdamW on a GPU (one kernel for every tensor); a training hook (DP-SGD's
    # Opacus) wraps the optimizer itself, and the CPU keeps PyTorch's default
    fused = device.type == "cuda" and cfg.mitigation is None
    opt = torch.optim.AdamW(
        net.parameters(),
        lr=cfg.lr,
        weight_decay=cfg.weight_decay,
        **({"fused": True} if fused else {}),
    )
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(cfg, s))
    hook = training_hook(cfg, images.shape[0])
    loss_net, opt = hook.attach(net, opt, device)
    gen = torch.Generator(device=device).manual_seed(cfg.seed)
    data = images.to(device)
    step, losses, elapsed = 0, [], 0.0

    ckpt_path = checkpoint_dir / "last.pt"
    if ckpt_path.exists():
        state = _read_checkpoint(ckpt_path, family)
        net.load_state_dict(state["net"])
        ema.shadow.load_state_dict(state["ema"])
        opt.load_state_dict(state["opt"])
        sched.load_state_dict(state["sched"])
        restore_generator(gen, state, cfg.seed)
        hook.load_state_dict(state.get("hook", {}))
        step, losses, elapsed = state["step"], state["losses"], state["elapsed"]
        log.info("resuming training from step %d/%d (%s)", step, cfg.steps, ckpt_path)

    def save() -> None:
        # never a checkpoint of weights a non-finite loss has already updated
        if not math.isfinite(float(running)):
            raise FloatingPointError(
                f"training loss became non-finite before step {step}; not checkpointed; "
                f"lower lr (now {cfg.lr}) or check the data range"
            )
        atomic_torch_save(
            {
                "family": family.name,
                "net": net.state_dict(),
                "ema": ema.shadow.state_dict(),
                "opt": opt.state_dict(),
                "sched": sched.state_dict(),
                "gen": gen.get_state(),
                "gen_device": gen.device.type,
                "hook": hook.state_dict(),
                "step": step,
                "losses": losses,
                "elapsed": elapsed + (time.perf_counter() - start),
            },
            ckpt_path,
        )

    start = time.perf_counter()
    net.train()
    # the loss is summed on the device and read (and checked for NaN) once per
    # LOSS_LOG_EVERY steps: no host sync per step
    running = torch.zeros((), device=device)
    with (
        bar(
            total=cfg.steps,
            initial=step,
            desc=f"train {family.name}",
            unit="step",
            enabled=progress,
            position=position,
        ) as pbar,
        _deferred_sigint() as interrupted,
    ):
        try:
            while step < cfg.steps:
                if interrupted():
                    raise KeyboardInterrupt
                idx = hook.batch(data.shape[0], cfg.batch_size, gen)
                opt.zero_grad(set_to_none=True)
                if idx.numel() == 0:  # a Poisson-sampled batch can be empty (DP-SGD)
                    hook.empty_batch()
                    loss = torch.zeros(())
                else:
                    with autocast(cfg.precision, data.device.type):  # a no-op for fp32
                        loss = family.loss(loss_net, data[idx], gen).float()
                    loss.backward()
                opt.step()
                hook.after_step()
                sched.step()
                step += 1
                ema.update(net, step)
                running += loss.detach().to(running.device)
                if step % LOSS_LOG_EVERY == 0 or step == cfg.steps:
                    window = (step - 1) % LOSS_LOG_EVERY + 1
                    mean = float(running) / window  # the one host sync of the window
                    if not math.isfinite(mean):
                        raise FloatingPointError(
                            f"training loss became {mean} within steps {step - window + 1}-"
                            f"{step}; lower lr (now {cfg.lr}) or check the data range"
                        )
                    if step % LOSS_LOG_EVERY == 0:
                        losses.append((step, mean))
                        pbar.set_postfix(loss=f"{mean:.4f}")
                    running.zero_()
                pbar.update(1)
                if step % cfg.checkpoint_every == 0 and step < cfg.steps:
                    save()
                if stop_after is not None and step >= stop_after and step < cfg.steps:
                    raise TrainingInterrupted(f"stopped after step {step} (stop_after)")
        except KeyboardInterrupt:
            save()
            log.warning(
                "interrupted at step %d; checkpoint saved to %s, rerun to resume", step, ckpt_path
            )
            raise
        finally:
            hook.detach()
    elapsed += time.perf_counter() - start
    ckpt_path.unlink(missing_ok=True)
    stats = {
        "train_seconds": elapsed,
        "train_steps": cfg.steps,
        "loss_history": losses,
        "final_loss": losses[-1][1] if losses else float("nan"),
        "param_count": sum(p.numel() for p in net.parameters()),
        **hook.stats(),
    }
    return ema.shadow.eval(), stats


@contextmanager
def _deferred_sigint():
    """Turn Ctrl-C into a flag checked between steps, so the checkpoint is consistent."""
    flag = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield flag.is_set
        return

    def handler(signum, frame):
        if flag.is_set():  # second Ctrl-C: stop at once
            raise KeyboardInterrupt
        flag.set()

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield flag.is_set
    finally:
        signal.signal(signal.SIGINT, previous)


def restore_generator(gen: torch.Generator, state: dict, seed: int) -> bool:
    """Continue the checkpoint's random stream in ``gen``; returns False where it cannot:
    a checkpoint written on another device type (a CPU generator's state is not a CUDA
    one's), where ``gen`` is seeded afresh from (seed, step) instead, said in the log."""
    # checkpoints before this field: a CUDA (Philox) state is 16 bytes, a CPU one thousands
    saved = state.get("gen_device") or ("cuda" if state["gen"].numel() <= 16 else "cpu")
    if saved == gen.device.type:
        gen.set_state(state["gen"])
        return True
    gen.manual_seed(int(seed) * 1_000_003 + int(state["step"]))
    log.warning(
        "the checkpoint at step %d was written on %s and resumes on %s: its random stream "
        "cannot continue there, so the batches and noise from here on come from a fresh "
        "generator (the model is not the one an uninterrupted run on one device gives)",
        state["step"], saved, gen.device.type,
    )  # fmt: skip
    return False


def _read_checkpoint(path: Path, family: ModelFamily) -> dict[str, Any]:
    try:
        # the restricted unpickler: tensors and plain containers only, never code
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise CheckpointError(
            f"training checkpoint {path} is corrupt ({type(err).__name__}: {err}); "
            f"move it away to restart training from step 0"
        ) from err
    if not isinstance(state, dict) or state.get("family") != family.name:
        raise CheckpointError(
            f"training checkpoint {path} belongs to family "
            f"{state.get('family') if isinstance(state, dict) else '?'!r}, not {family.name!r}; "
            f"move it away to restart training"
        )
    return state
