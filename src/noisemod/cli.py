"""noisemod command line: train, evaluate and explain models trained with noise modulation.

Each subcommand is a thin layer over one library function; ``main(argv)`` is callable from tests.
Invalid option values exit with code 2 and one line naming the option and the value, before
anything is written.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from .config import METHODS, ConfigError, TrainConfig
from .modulation import NOISES
from .train import TrainingInterrupted

# TrainConfig fields exposed by `noisemod train`: (type, help). Defaults come from TrainConfig.
TRAIN_OPTIONS = {
    "dataset": (str, "dataset name: digits (embedded), mnist, fashion-mnist, cifar10, imagefolder, synthetic"),
    "model": (str, "model name: mlp, fcnn, lenet, vgg11, vgg16, resnet18, or tv:<torchvision name>"),
    "method": (str, f"training method: {', '.join(METHODS)}"),
    "beta": (float, "nm: ratio of the constant component of the carrier, in [0, 1]"),
    "noise": (str, f"nm: carrier noise: {', '.join(NOISES)}"),
    "eps": (float, "pgd/fgsm: attack radius (default per dataset)"),
    "alpha": (float, "pgd/fgsm: step size (default per dataset)"),
    "steps": (int, "pgd: attack steps (default per dataset)"),
    "norm": (str, "pgd/fgsm: threat model, linf or l2"),
    "igr_lambda": (float, "igr: weight of the squared input-gradient norm"),
    "epochs": (int, "training epochs"),
    "batch_size": (int, "training batch size (per process under torchrun)"),
    "lr": (float, "learning rate"),
    "optimizer": (str, "adam, adamw or sgd"),
    "momentum": (float, "sgd momentum"),
    "weight_decay": (float, "weight decay"),
    "schedule": (str, "learning-rate schedule: constant, cosine or step"),
    "seed": (int, "random seed"),
    "train_size": (int, "train on a seeded subset of N training images"),
    "val_size": (int, "validation images carved from the training set (default: 5000, or 10%% of small sets)"),
    "eval_batch_size": (int, "batch size for evaluation"),
    "data_root": (str, "folder holding the datasets (default: $NOISEMOD_DATA, else ~/.cache/noisemod/data)"),
    "device": (str, "cpu, cuda, cuda:N or auto (default: CUDA when present)"),
    "amp": (str, "mixed precision on GPU: none, bf16 or fp16"),
}


FLAGS = ("modulate_after_norm", "fused_noise", "compile", "channels_last")  # train's on/off options


class UsageError(Exception):
    """A bad option value: reported as one line, exit code 2."""


def _add_train_options(p: argparse.ArgumentParser) -> None:
    defaults = TrainConfig()
    for name, (typ, help_) in TRAIN_OPTIONS.items():
        default = getattr(defaults, name)
        p.add_argument(
            "--" + name.replace("_", "-"),
            dest=name,
            type=_typed(name, typ),
            default=None,
            help=f"{help_} (default: {default})" if default is not None else help_,
        )
    p.add_argument(
        "--modulate-after-norm",
        action="store_true",
        default=None,
        help="nm: modulate the normalized input instead of the [0, 1] input",
    )
    p.add_argument(
        "--fused-noise",
        action="store_true",
        default=None,
        help="nm with gaussian noise: draw the noise with a counter-based generator and modulate in one "
        "compiled kernel (several times faster on CPU; another random stream)",
    )
    p.add_argument(
        "--compile",
        action="store_true",
        default=None,
        help="torch.compile the training forward/backward (a one-time compilation cost; not with igr)",
    )
    p.add_argument(
        "--channels-last",
        action="store_true",
        default=None,
        help="channels-last memory format for the model and its inputs (faster convolutions on GPU)",
    )


def _typed(name: str, typ, minimum=None):
    def parse(text: str):
        try:
            value = typ(text)
        except ValueError:
            raise UsageError(f"invalid --{name.replace('_', '-')}={text!r}: expected {typ.__name__}") from None
        if minimum is not None and value < minimum:
            raise UsageError(f"invalid --{name.replace('_', '-')}={value!r}: expected a {typ.__name__} >= {minimum}")
        return value

    parse.__name__ = typ.__name__
    return parse


def _config(args) -> TrainConfig:
    values = {k: getattr(args, k) for k in (*TRAIN_OPTIONS, *FLAGS) if getattr(args, k) is not None}
    try:
        return TrainConfig(**values)
    except ConfigError as e:
        raise UsageError(f"invalid --{e.option.replace('_', '-')}={e.value!r}: expected {e.expected}") from None


def _check_device(name: str | None) -> None:
    from .train import resolve_device

    try:
        resolve_device(name)
    except ValueError as e:
        raise UsageError(str(e).replace("invalid device=", "invalid --device=")) from None


def _validate_names(config: TrainConfig) -> None:
    """Unknown dataset, model or device names are usage errors, caught before any run directory exists."""
    from .data import DATASETS
    from .models import list_models

    _check_device(config.device)

    if config.dataset not in DATASETS:
        raise UsageError(f"invalid --dataset={config.dataset!r}: expected one of {', '.join(sorted(DATASETS))}")
    if not (config.model in list_models() or config.model.startswith("tv:")):
        raise UsageError(f"invalid --model={config.model!r}: expected one of {', '.join(list_models())} or tv:<name>")


def cmd_train(args) -> int:
    from .train import fit

    config = _config(args)
    _validate_names(config)
    result = fit(
        config, args.out, resume=args.resume, progress=not args.quiet, log=(lambda *_: None) if args.quiet else print
    )
    if result:
        print(json.dumps({k: result[k] for k in ("test_accuracy", "vii", "best_epoch", "train_seconds")}))
    return 0


def cmd_evaluate(args) -> int:
    from .data import load_dataset
    from .io import write_json
    from .train import evaluate, load_model, resolve_device, run_config

    _check_device(args.device)
    config = run_config(args.run_dir)
    device = resolve_device(args.device)
    model = load_model(args.run_dir, device=device)
    data = load_dataset(config.dataset, root=args.data_root or config.data_root, val_size=config.val_size)
    result = evaluate(model, data, config, device=device, robust=args.robust, progress=not args.quiet)
    write_json(f"{args.run_dir}/evaluation.json", result)
    print(json.dumps(result))
    return 0


def cmd_explain(args) -> int:
    from .explain import explain_run

    path = explain_run(args.run_dir, args.images, out=args.out, n=args.n, data_root=args.data_root)
    print(path)
    return 0


def cmd_demo(args) -> int:
    from .demo import demo

    table, png = demo(
        args.dataset,
        model=args.model,
        data_root=args.data_root,
        out=args.out,
        epochs=args.epochs,
        fresh=args.fresh,
        progress=not args.quiet,
        log=(lambda *_: None) if args.quiet else print,
    )
    print(table)
    print(f"gradient maps: {png}")
    return 0


def cmd_sweep(args) -> int:
    from .experiments import exit_code, expand, load_spec, run_sweep

    try:  # the spec and the budget are checked before anything is written
        expand(load_spec(args.spec), args.budget)
    except FileNotFoundError:
        raise UsageError(f"invalid SPEC={args.spec!r}: no such file") from None
    except ValueError as e:
        raise UsageError(str(e)) from None

    records = run_sweep(
        args.spec, args.out, jobs=args.jobs, budget=args.budget, data_root=args.data_root, dry_run=args.dry_run
    )
    return exit_code(records)


def cmd_report(args) -> int:
    from .report import write_report

    html, md = write_report(args.sweep_dir, data_root=args.data_root)
    print(html)
    print(md)
    return 0


def cmd_figures(args) -> int:
    from .figures import make_figures

    for path in make_figures(args.sweep_dir, out_dir=args.out, data_root=args.data_root):
        print(path)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="noisemod", description=__doc__.split("\n\n")[0])
    parser.add_argument("--version", action="version", version=f"noisemod {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "train",
        help="train one model into a run directory",
        description="Train one model (standard, noise modulation, PGD, FGSM or IGR) into a run directory.",
    )
    _add_train_options(p)
    p.add_argument("--out", required=True, help="run directory to create (or to continue with --resume)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run from RUN_DIR/last.pt")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars or per-epoch lines")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser(
        "evaluate",
        help="test accuracy, VII and optionally robust accuracy of a run",
        description="Evaluate the best checkpoint of a run: test accuracy, VII (Definition 3) and, "
        "with --robust, accuracy under PGD; also written to RUN_DIR/evaluation.json.",
    )
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--robust", action="store_true", help="also PGD robust accuracy (per-dataset default attack)")
    p.add_argument("--data-root", help="folder holding the datasets (default: the run's)")
    p.add_argument("--device", help="cpu, cuda, cuda:N or auto")
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser(
        "explain",
        help="gradient maps of a run as a PNG",
        description="Write the best model's input-gradient maps (scaled to [0, 1]) beside their inputs.",
    )
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("images", nargs="*", metavar="IMAGE", help="image files (default: a grid of test images)")
    p.add_argument("--out", help="PNG path (default: RUN_DIR/gradients.png)")
    p.add_argument("-n", type=_typed("n", int, 1), default=12, help="number of test images (default: 12)")
    p.add_argument("--data-root", help="folder holding the datasets (default: the run's)")
    p.set_defaults(func=cmd_explain)

    p = sub.add_parser(
        "demo",
        help="standard vs noise modulation side by side (the README's main job)",
        description="Train standard and noise-modulated models, print accuracy, VII and training "
        "time, and write one PNG comparing their gradient maps.",
    )
    p.add_argument("--dataset", default="digits", help="digits (embedded, default) or e.g. mnist with --data-root")
    p.add_argument("--model", default="lenet", help="model name (default: lenet)")
    p.add_argument("--data-root", help="folder holding the datasets")
    p.add_argument("--epochs", type=_typed("epochs", int, 1), help="epochs (default: 50 on digits, else 1)")
    p.add_argument("--out", default="demo-out", help="output folder (default: demo-out)")
    p.add_argument("--fresh", action="store_true", help="retrain even if finished runs are in --out")
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser(
        "sweep",
        help="run every run of an experiment spec (YAML), N at a time",
        description="Run the grid of an experiment spec (e.g. experiments/fig3.yaml) into DIR: "
        "completed runs are skipped, interrupted ones resumed, and DIR/results.csv "
        "holds one row per finished run.",
    )
    p.add_argument("spec", metavar="SPEC", help="experiment spec, e.g. experiments/fig3.yaml")
    p.add_argument("--out", required=True, help="sweep folder (runs/, results.csv, sweep.json)")
    p.add_argument("--jobs", type=_typed("jobs", int, 1), default=1, help="runs at a time (default: 1)")
    p.add_argument("--budget", default="paper", help="budget named in the spec, e.g. paper or cpu (default: paper)")
    p.add_argument("--data-root", help="folder holding the datasets, passed to every run")
    p.add_argument("--dry-run", action="store_true", help="print the runs and their commands, run nothing")
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser(
        "figures",
        help="the paper's figures for a finished sweep (PNG and SVG)",
        description="Make the figures that apply to a sweep folder (fig1-fig5) as PNG and SVG.",
    )
    p.add_argument("sweep_dir", metavar="DIR", help="a folder written by noisemod sweep")
    p.add_argument("--out", help="output folder (default: DIR/figures)")
    p.add_argument("--data-root", help="folder holding the datasets (default: the runs')")
    p.set_defaults(func=cmd_figures)

    p = sub.add_parser(
        "report",
        help="self-contained HTML (and Markdown) report of a sweep",
        description="Write DIR/report.html (self-contained) and DIR/report.md: results table, "
        "figures, settings, budget, and the commands to reproduce them.",
    )
    p.add_argument("sweep_dir", metavar="DIR", help="a folder written by noisemod sweep")
    p.add_argument("--data-root", help="folder holding the datasets (default: the runs')")
    p.set_defaults(func=cmd_report)
    return parser


def _version() -> str:
    from . import __version__

    return __version__


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        return args.func(args)
    except UsageError as e:
        print(f"noisemod: error: {e}", file=sys.stderr)
        return 2
    except TrainingInterrupted as e:
        print(f"noisemod: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("noisemod: interrupted", file=sys.stderr)
        return 130
    except (ValueError, FileNotFoundError, FloatingPointError) as e:
        print(f"noisemod: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
