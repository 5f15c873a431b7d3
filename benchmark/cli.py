"""The ``memobench`` command: run the suite, render the leaderboard, plan, list plugins.

memobench run [--tier smoke|paper|validation|all] [--dataset NAME --data-root DIR] [--rehearse]
              [-- PYTEST_ARGS...]
memobench audit MODEL --members DIR --heldout DIR [-o OUT] [--fail-if RULE ...]
memobench report FILES... [-o reports/leaderboard.html] [--fail-if RULE ...]
memobench plan [--tier paper] [--shard K/N] [--tflops X]
memobench list
memobench doctor [--device D] [--cache DIR] [--data-root DIR]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
from pathlib import Path

from benchmark import registry
from benchmark.errors import MemobenchError
from benchmark.options import add_to_argparse
from benchmark.tiers import ALL, PAPER, SMOKE, TIER_MARKERS, VALIDATION


def _suites_dir() -> Path:
    """The installed package's suites (``benchmark/suites``): the same from a clone and
    from a wheel, whatever the working directory."""
    from benchmark import suites

    return Path(suites.__file__).parent


def cmd_run(args: argparse.Namespace) -> int:
    import pytest

    from benchmark.options import BY_NAME, CLI_PREFIX, PYTEST_PREFIX, check_values, given_values
    from benchmark.pytest_plugin import GivenOptions, check_dataset_option, check_run_options

    values = given_values(args)
    for arg in args.pytest_args:  # the same option twice, two spellings: say which to use
        name = arg.split("=")[0].removeprefix(PYTEST_PREFIX)
        if arg.startswith(PYTEST_PREFIX) and name in BY_NAME and BY_NAME[name].cli:
            raise MemobenchError(
                f"{arg.split('=')[0]} after --: pass it to memobench run as {CLI_PREFIX}{name}"
            )
    tier = values.setdefault("tier", SMOKE)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    # outputs go under the working directory: a clone's root, or a user's own repository
    results = Path(values.get("results") or Path("reports") / "results" / f"run-{stamp}.json")
    results = results.absolute()
    values["results"] = str(results)

    def get(name: str):
        return values.get(name, BY_NAME[name].default)

    # each bad value in one line before pytest starts, named as the user spelled it
    check_values(get, CLI_PREFIX)
    check_run_options(values.get("device"), None, bool(values.get("rehearse")))
    if "dataset" in values:
        if tier == PAPER:
            raise MemobenchError(
                "--dataset chooses the smoke tier's data; the paper tier's cases name their "
                "MedMNIST sets themselves (drop --dataset, or run --tier smoke)"
            )
        if tier == VALIDATION:
            raise MemobenchError(
                "--dataset chooses the smoke tier's data; the validation tier checks the "
                "settings tuned on digits on other digits (drop --dataset, or run --tier smoke)"
            )
        check_dataset_option(values["dataset"], values.get("data-root"), values.get("cache"))
    pytest_args = [
        str(_suites_dir()),
        "-m",
        tier if tier != ALL else " or ".join(TIER_MARKERS),
        "-p",
        "no:cacheprovider",
        *args.pytest_args,
    ]
    code = int(pytest.main(pytest_args, plugins=[GivenOptions(values)]))
    return finish_run(code, results, args.output)


RESUME = (
    "run the same command again to resume: the models, classifiers and audits that "
    "finished are stored in the cache and reused, a training cut off mid-way resumes "
    "from its last checkpoint"
)


def finish_run(code: int, results: Path, output: str | None) -> int:
    """After pytest: the leaderboard of whatever cases finished (all of them, or those
    before a Ctrl-C or a crash), and how to resume when the run did not end."""
    import pytest

    from benchmark.report.leaderboard import render

    interrupted = code == pytest.ExitCode.INTERRUPTED
    if not results.exists():
        print(
            f"memobench: the run wrote no results ({results}); pytest exit code {code}",
            file=sys.stderr,
        )
        if interrupted:
            print(f"memobench: interrupted before any case finished; {RESUME}", file=sys.stderr)
        return code or 1
    out = render([results], output)
    print(f"memobench: results {results}")
    print(f"memobench: leaderboard {out}")
    if interrupted:
        print(
            f"memobench: interrupted: the results and the leaderboard hold the cases that "
            f"finished; {RESUME}",
            file=sys.stderr,
        )
    return code


def cmd_audit(args: argparse.Namespace) -> int:
    import diffusers
    import torch

    import benchmark
    from benchmark.environment import environment
    from benchmark.gate import parse_rules, violations
    from benchmark.model_audit import RISK_ATTACK, RISK_FPR, audit_model
    from benchmark.report.leaderboard import render
    from benchmark.report.results import write_results
    from benchmark.report.risk import summary, write_risk_report
    from benchmark.session import Session

    rules = parse_rules(args.fail_if or [])  # a malformed rule stops before any work
    out = Path(args.output)
    check_output_folder(out, "-o")
    session = Session(
        args.cache, device=args.device, reaudit=args.reaudit, feature_encoder=args.feature_encoder
    )
    audit = audit_model(
        args.model,
        args.members,
        args.heldout,
        session,
        family=args.family,
        fit=args.fit,
        n_gen=args.samples,
        steps=args.steps,
        mitigation=args.mitigation,
        seed=args.seed,
    )
    record = audit.record
    results = write_results(
        out / "results.json",
        [record],
        {
            "version": benchmark.__version__,
            "torch": torch.__version__,
            "diffusers": diffusers.__version__,
            "tier": "audit",
            "rehearsal": False,
            "device": str(session.device),
            "environment": environment(),
        },
    )
    board = render([results], out / "leaderboard.html", title="memobench audit")
    csv, page = write_risk_report(
        out,
        record,
        audit.risks,
        audit.members.names,
        audit.result.data.train,
        audit.result.samples.images,
        RISK_ATTACK,
        RISK_FPR,
    )
    print(f"memobench: audit of {audit.model_path}: {audit.rule.describe()}")
    for text in summary(record, RISK_ATTACK, RISK_FPR):
        print(f"  {text}")
    print(f"memobench: results {results}")
    print(f"memobench: leaderboard {board}")
    print(f"memobench: per-image risk {page} and {csv}")
    if not rules:
        return 0
    broken = violations(rules, record)
    for why in broken:
        print(f"memobench: gate: {record['case_id']}: {why}", file=sys.stderr)
    verdict = "fails" if broken else "passes"
    print(f"memobench: gate ({len(rules)} rule(s)): the model {verdict}")
    return 1 if broken else 0


def check_output_folder(out: Path, flag: str) -> None:
    """Refuse an output folder that cannot be written before any work (nothing created)."""
    if out.exists() and not out.is_dir():
        raise MemobenchError(f"{flag} {out}: a file, not a folder; name a folder for the outputs")
    parent = out
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise MemobenchError(f"{flag} {out}: {parent} is not writable; choose another folder")


def cmd_report(args: argparse.Namespace) -> int:
    from benchmark.gate import parse_rules
    from benchmark.report.leaderboard import render

    rules = parse_rules(args.fail_if or [])  # a malformed rule stops before any work
    out = render(args.files, args.output)
    print(f"memobench: leaderboard {out}")
    return gate_results(args.files, rules) if rules else 0


def gate_results(files: list[str], rules) -> int:
    """Each case's latest record against the ``--fail-if`` rules: one line per case and
    rule it breaks, on stderr; 1 when any, so CI stops the release."""
    from benchmark.gate import violations
    from benchmark.report.results import latest_records

    latest = latest_records(files)  # the records the leaderboard marks latest
    if not latest:
        print("memobench: gate: the files hold no case, so nothing passed it", file=sys.stderr)
        return 1
    broken = [(case, why) for case, record in sorted(latest.items())
              for why in violations(rules, record)]  # fmt: skip
    for case, why in broken:
        print(f"memobench: gate: {case}: {why}", file=sys.stderr)
    cases = len({case for case, _ in broken})
    verdict = f"{cases} of {len(latest)} case(s) fail" if broken else f"all {len(latest)} pass"
    print(f"memobench: gate ({len(rules)} rule(s)): {verdict}")
    return 1 if broken else 0


def cmd_plan(args: argparse.Namespace) -> int:
    from benchmark.options import parse_shard

    if args.tflops <= 0:
        raise MemobenchError(f"--tflops must be > 0, got {args.tflops}")
    if args.n_gen is not None and args.n_gen < 1:
        raise MemobenchError(f"--n-gen must be >= 1, got {args.n_gen}")
    if args.batch < 1:
        raise MemobenchError(f"--batch must be >= 1, got {args.batch}")
    if args.seeds is not None and args.seeds < 1:
        raise MemobenchError(f"--seeds must be >= 1, got {args.seeds}")
    shard = parse_shard(args.shard)  # a ConfigError: one line, like the suite's own

    from benchmark.cache import Cache
    from benchmark.plan import format_plan, plan_cases
    from benchmark.tiers import (
        PAPER_N_GEN,
        AuditCounts,
        default_seeds,
        detector_config,
        paper_cases,
    )

    seeds = args.seeds if args.seeds is not None else default_seeds(PAPER, "cuda")
    plans = plan_cases(
        paper_cases(args.n_gen or PAPER_N_GEN, seeds),
        Cache(args.cache),
        detector_config(PAPER),
        AuditCounts(),
        shard=shard,
        data_root=args.data_root,
        device_type="cuda",
    )
    if not args.measure:
        print(format_plan(plans, args.tflops))
        return 0
    from benchmark.device import resolve_device
    from benchmark.plan import measure_plans
    from benchmark.speed import Speed
    from benchmark.tiers import PAPER_GPU_SPEED

    device = resolve_device(args.device or "auto")
    speeds = [("strict fp32", Speed(tf32=False))]
    if device.type == "cuda":  # the paper tier's defaults there, beside strict fp32
        speeds.append((f"the paper tier's default ({PAPER_GPU_SPEED.label()})", PAPER_GPU_SPEED))
    for label, speed in speeds:
        rates = measure_plans(plans, device, speed, args.batch)
        print(f"== at {label}, network measured on {device}")
        print(format_plan(plans, args.tflops, rates))
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from benchmark.doctor import doctor

    return doctor(args.device or "auto", args.cache, args.data_root)


def cmd_list(args: argparse.Namespace) -> int:
    for kind, reg in registry.REGISTRIES.items():
        print(f"{kind}: {', '.join(reg.names()) or '(none)'}")
    if args.settings:  # what each mitigation and sampler takes, with its defaults
        from benchmark.params import param_defaults

        for kind in ("mitigations", "samplers"):
            reg = registry.REGISTRIES[kind]
            print(f"\n{kind}' settings (params=...), with their defaults:")
            for name in reg.names():
                defaults = param_defaults(reg.get(name).Params).items()
                taken = ", ".join(f"{k}={v!r}" for k, v in defaults) or "(none)"
                print(f"  {name}: {taken}")
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    from benchmark.metrics.base import schema

    for field in schema():
        print(field.describe())
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="memobench", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run a tier of the suite and render the leaderboard")
    run.add_argument("--output", "-o", help="leaderboard HTML (default reports/leaderboard.html)")
    add_to_argparse(run)  # the run options, declared once in benchmark/options.py
    run.add_argument(
        "pytest_args", nargs=argparse.REMAINDER, help="after --: more pytest arguments"
    )
    run.set_defaults(func=cmd_run)

    aud = sub.add_parser(
        "audit",
        help="audit a model you trained on the images you trained it on: a verdict, a "
        "per-image risk report, a leaderboard and an optional release gate",
    )
    aud.add_argument(
        "model",
        help="the model's folder: a diffusers DDPMPipeline/DDIMPipeline save_pretrained "
        "folder (unet/ + scheduler/) or a UNet2DModel folder",
    )
    aud.add_argument(
        "--members", required=True,
        help="the images the model was trained on: a folder (PNG/JPEG/TIFF/BMP, recursive) "
        "or an .npz (file.npz:key for another array)",
    )  # fmt: skip
    aud.add_argument(
        "--heldout", required=True,
        help="images of the same kind the model never saw (same forms as --members)",
    )  # fmt: skip
    aud.add_argument(
        "--output", "-o", default="memobench-audit",
        help="folder for results.json, leaderboard.html, risk.html and risk.csv "
        "(default ./memobench-audit)",
    )  # fmt: skip
    aud.add_argument(
        "--fit", choices=("resize", "center-crop", "exact"), default="resize",
        help="how images reach the model's size: resize (shorter side, then centre crop, as "
        "diffusers' train_unconditional.py example prepares them; default), center-crop, or "
        "exact (they must already be the model's size)",
    )  # fmt: skip
    aud.add_argument("--samples", type=int, default=1024, help="samples to generate (default 1024)")
    aud.add_argument(
        "--steps", type=int, default=None,
        help="the sampler's steps (default: the family's, 50 DDIM steps for ddim)",
    )  # fmt: skip
    aud.add_argument(
        "--family",
        default=None,
        help="the model family that reads MODEL (default: latent for a folder with vqvae/ "
        "or vae/, else ddim)",
    )
    aud.add_argument(
        "--mitigation", default="none",
        help="audit the model under a sampling-time mitigation (memobench list)",
    )  # fmt: skip
    aud.add_argument("--seed", type=int, default=0, help="the samples' seed (default 0)")
    aud.add_argument("--device", default="auto", help="auto (default), cpu, cuda or cuda:N")
    aud.add_argument(
        "--cache", help="cache folder (default $MEMOBENCH_CACHE or ~/.cache/memobench)"
    )
    aud.add_argument(
        "--feature-encoder", metavar="FILE",
        help="a TorchScript encoder (torch.jit.save) mapping (N, C, H, W) images in [-1, 1] to "
        "(N, D) features, for FID and replication instead of the copy-detection encoder "
        "memobench trains on the images",
    )  # fmt: skip
    aud.add_argument(
        "--reaudit", action="store_true", help="measure again instead of reusing a stored audit"
    )
    aud.add_argument(
        "--fail-if", action="append", metavar="RULE",
        help='exit 1 when the audit breaks RULE, "KEY OP VALUE" (e.g. "members_reproduced > '
        '0", "mia_loss_weights_auc > 0.6"; `memobench schema` lists the keys); repeatable',
    )  # fmt: skip
    aud.set_defaults(func=cmd_audit)

    rep = sub.add_parser("report", help="merge results JSON files into the leaderboard")
    rep.add_argument("files", nargs="+", help="results files (pytest-benchmark JSON)")
    rep.add_argument("--output", "-o", help="leaderboard HTML (default reports/leaderboard.html)")
    rep.add_argument(
        "--fail-if",
        action="append",
        metavar="RULE",
        help='exit 1 when a case\'s record breaks RULE, "KEY OP VALUE" with OP one of > >= < '
        '<= == != (e.g. "carlini_l2 > 0"; `memobench schema` lists the keys); repeatable; a '
        "key a case did not measure fails it",
    )
    rep.set_defaults(func=cmd_report)

    pln = sub.add_parser(
        "plan", help="print each case's cache state, NFE, FLOPs and predicted GPU time"
    )
    pln.add_argument("--tier", choices=(PAPER,), default=PAPER)
    pln.add_argument("--shard", metavar="K/N", help="only the K-th of N shards, as the suite")
    pln.add_argument("--n-gen", type=int, default=None, help="samples per case (default 50000)")
    pln.add_argument(
        "--seeds",
        type=int,
        default=None,
        metavar="K",
        help="models per case, as the run's --memobench-seeds (default 3: the paper tier's on "
        "a GPU)",
    )
    pln.add_argument(
        "--tflops",
        type=float,
        default=100.0,
        help="sustained network throughput to predict GPU time with, in TFLOP/s (default 100: "
        "an assumption, not a measurement; measure yours on the runner)",
    )
    pln.add_argument(
        "--measure",
        action="store_true",
        help="time each case's real network on --device (evaluations and training steps) and "
        "predict from that instead of --tflops; on a GPU also at the paper tier's defaults",
    )
    pln.add_argument("--device", help="where --measure times the network (default auto)")
    pln.add_argument(
        "--batch", type=int, default=256, help="images per timed call of --measure (default 256)"
    )
    pln.add_argument("--cache", help="cache folder to check (default as `run`)")
    pln.add_argument("--data-root", help="folder with the MedMNIST .npz files")
    pln.set_defaults(func=cmd_plan)

    doc = sub.add_parser(
        "doctor",
        help="check the device, libraries, cache folder and data root before a run (exit 1 "
        "with the fix where something would stop it)",
    )
    doc.add_argument("--device", help="the device a run would use (default auto)")
    doc.add_argument("--cache", help="the cache folder a run would use")
    doc.add_argument("--data-root", help="the data root a run would read")
    doc.set_defaults(func=cmd_doctor)

    lst = sub.add_parser("list", help="list registered plugins")
    lst.add_argument(
        "--settings",
        action="store_true",
        help="also each mitigation's and sampler's settings, with their defaults",
    )
    lst.set_defaults(func=cmd_list)

    sch = sub.add_parser("schema", help="list the results record's fields: key, kind and meaning")
    sch.set_defaults(func=cmd_schema)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if getattr(args, "pytest_args", None) and args.pytest_args[0] == "--":
        args.pytest_args = args.pytest_args[1:]
    try:
        return args.func(args)
    except MemobenchError as err:
        print(f"memobench: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
