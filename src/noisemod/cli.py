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
from pathlib import Path

from .config import ConfigError, TrainConfig, read_config_file, settings
from .rundir import RunDir, SweepDir
from .training.runtime import TrainingInterrupted

GROUPS = {  # --help sections, in order
    "experiment": "what is trained",
    "method": "method settings (each used by the methods it names)",
    "optimization": "optimization",
    "data": "data",
    "evaluation": "evaluation (of the best checkpoint, after training)",
    "hardware": "hardware, speed and monitoring (a run may be resumed with any of them changed but --amp)",
}


class UsageError(Exception):
    """A bad option value: reported as one line, exit code 2."""


def _setting_help(s) -> str:
    """One setting's --help line: which methods use it, what it is, its choices and default."""
    from .methods import methods_using

    text = (f"{', '.join(methods_using(s.name)) or 'no method'}: " if s.method else "") + s.help
    if s.check.choices is not None:
        text += f"; one of: {', '.join(s.check.choices())}"
    if s.default is not None:
        text += f" (default: {s.default})"
    return text.replace("%", "%%")


def _add_train_options(p: argparse.ArgumentParser) -> None:
    """Every TrainConfig setting as an option (``--name-with-dashes``), from its description; the
    defaults stay None so that only the options given override a --config file."""
    p.add_argument(
        "--config",
        metavar="FILE",
        help=f"start from the settings in FILE (a run's {RunDir.CONFIG}, or a JSON/YAML mapping of settings); "
        "the options given here override it",
    )
    groups = {key: p.add_argument_group(title) for key, title in GROUPS.items()}
    for s in settings():
        group = groups[s.group]
        if s.type is bool:
            group.add_argument(s.option, dest=s.name, action=argparse.BooleanOptionalAction, help=_setting_help(s))
        else:
            group.add_argument(s.option, dest=s.name, type=_typed(s.name, s.type), help=_setting_help(s))


def _methods_epilog() -> str:
    from .methods import METHODS

    width = max(map(len, METHODS))
    lines = [f"  {m.name:<{width}}  {m.summary.replace('`', '')}" for m in METHODS.values()]
    return "methods:\n" + "\n".join(lines)


def _metrics_help() -> str:
    from .metrics import default_metrics, list_metrics

    return (
        f"interpretability metrics, comma-separated: {', '.join(list_metrics())} (saved in "
        f"RUN_DIR/{RunDir.INTERPRETABILITY}; default with --explainer, --floor or -n: {','.join(default_metrics())})"
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
    """The config of ``noisemod train``: the --config file's settings, then the options given."""
    given = {s.name: getattr(args, s.name) for s in settings() if getattr(args, s.name) is not None}
    values = {}
    if args.config is not None:
        try:
            values = read_config_file(args.config)
        except FileNotFoundError:
            raise UsageError(f"invalid --config={args.config!r}: no such file") from None
        except ValueError as e:
            raise UsageError(str(e)) from None
    try:
        config = TrainConfig.from_dict({**values, **given})
    except ConfigError as e:
        if e.option in given or args.config is None:
            raise UsageError(f"invalid --{e.option.replace('_', '-')}={e.value!r}: expected {e.expected}") from None
        raise UsageError(f"{args.config}: invalid {e.option}={e.value!r}: expected {e.expected}") from None
    _check_method_settings(config, given)
    return config


def _check_method_settings(config: TrainConfig, given: dict) -> None:
    """A method setting given on the command line, away from its default, for a method that does
    not use it would change nothing: refuse it, naming the methods that do use it."""
    from .methods import get_method, methods_using

    for s in settings():
        if (
            s.method
            and s.name in given
            and given[s.name] != s.default
            and s.name not in get_method(config.method).settings
        ):
            users = ", ".join(methods_using(s.name))
            raise UsageError(f"invalid {s.option}={given[s.name]!r}: used by {users}, not by --method {config.method}")


def _check_device(name: str | None) -> None:
    from .training.runtime import resolve_device

    try:
        resolve_device(name)
    except ValueError as e:
        raise UsageError(str(e).replace("invalid device=", "invalid --device=")) from None


def cmd_train(args) -> int:
    from .train import fit

    config = _config(args)
    _check_device(config.device)
    result = fit(
        config,
        args.out,
        resume=args.resume,
        progress=not args.quiet,
        log=(lambda *_: None) if args.quiet else print,
    )
    if result:
        print(json.dumps({k: result[k] for k in ("test_accuracy", "vii", "best_epoch", "train_seconds")}))
    return 0


def cmd_evaluate(args) -> int:
    from .evaluation import evaluate_run
    from .training.runtime import resolve_device

    _check_device(args.device)
    metrics = _check_evaluate_options(args)
    try:
        done = evaluate_run(
            args.run_dir,
            robust=args.robust,
            robust_images=args.robust_images,
            eps=args.eps,
            metrics=metrics,
            explainer=args.explainer,
            floor=args.floor,
            n=args.n,
            score_sigma=args.score_sigma,
            cascading=args.cascading,
            absolute=args.absolute,
            yardsticks=args.yardsticks,
            data_root=args.data_root,
            device=resolve_device(args.device),
            progress=not args.quiet,
        )
    except ValueError as e:
        from .denoiser import DenoiserError

        if str(e).startswith(("invalid n=", "unknown explainer")) or isinstance(e, DenoiserError):
            raise UsageError(str(e).replace("invalid n=", "invalid --n=")) from None
        raise
    print(_evaluation_text(done, metrics, args))
    return 0


def _check_evaluate_options(args) -> list[str] | None:
    """The options of ``evaluate`` that do not go together, or name no metric or explainer, as
    usage errors; returns the metrics asked (``--metrics``, or the defaults when an interpretability
    option is given), None for none."""
    from .explainers import get_explainer
    from .metrics import METRICS, default_metrics

    if args.absolute and not args.cascading:
        raise UsageError("--absolute applies to --cascading only")
    if args.eps is not None and not args.robust:
        raise UsageError(f"invalid --eps={args.eps!r}: it applies to --robust only")
    if args.cascading:
        return None
    if args.yardsticks:
        if args.metrics is not None or args.explainer is not None or args.score_sigma is not None:
            raise UsageError(
                "--yardsticks measures every metric, explainer and sigma: drop --metrics/--explainer/--score-sigma"
            )
        return None
    if args.score_sigma is not None and "score_alignment" not in (args.metrics or ""):
        raise UsageError(
            f"invalid --score-sigma={args.score_sigma!r}: it applies to --metrics [class_]score_alignment only"
        )
    if args.metrics is None and args.explainer is None and not args.floor and args.n is None:
        return None
    text = args.metrics if args.metrics is not None else ",".join(default_metrics())
    metrics = [m.strip() for m in text.split(",") if m.strip()]
    for m in metrics or [""]:
        if m not in METRICS:
            raise UsageError(f"invalid --metrics={args.metrics!r}: unknown metric {m!r}; known: {', '.join(METRICS)}")
    try:
        get_explainer(args.explainer or "gradient")
    except ValueError as e:
        raise UsageError(f"invalid --explainer={args.explainer!r}: {e}") from None
    return metrics


def _evaluation_text(done, metrics: list[str] | None, args) -> str:
    """What ``evaluate`` prints: JSON, or for interpretability without --json one line per metric
    (and its floor), for the randomization test without --json one line per module."""
    if done.kind == "evaluation" or (done.kind == "yardsticks" and args.json):
        return json.dumps(done.values)
    if done.kind == "yardsticks":
        return f"{len(done.values)} values written to {RunDir(args.run_dir).file(RunDir.YARDSTICKS)}"
    if done.kind == "cascading":
        return json.dumps(dict(done.values)) if args.json else "\n".join(f"{m:<24} {r:.4f}" for m, r in done.values)
    if args.json:
        return json.dumps(done.values)
    width = max(map(len, metrics))
    floor = {m: f"  (floor {done.values[m + '_floor']:.4f})" if args.floor else "" for m in metrics}
    return "\n".join(f"{m:<{width}}  {done.values[m]:.4f}{floor[m]}" for m in metrics)


def cmd_explain(args) -> int:
    from .explainers import EXPLAINERS
    from .image_rows import explain_run

    explainers = [e.strip() for e in args.explainers.split(",") if e.strip()]
    for name in explainers or [""]:
        if name not in EXPLAINERS:
            known = ", ".join(EXPLAINERS)
            raise UsageError(f"invalid --explainers={args.explainers!r}: unknown explainer {name!r}; known: {known}")
    path = explain_run(
        args.run_dir, args.images, out=args.out, n=args.n, data_root=args.data_root, explainers=explainers
    )
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
    from .experiments.catalog import SpecNotFound, listing, resolve_spec

    if args.list:
        if args.spec is not None:
            raise UsageError("--list takes no SPEC")
        print(listing())
        return 0
    if args.spec is None:
        raise UsageError("sweep needs a SPEC: a spec file or a bundled spec's name (noisemod sweep --list)")
    try:  # the spec and the budget are checked before anything is written
        spec = load_spec(resolve_spec(args.spec, note=lambda line: print(f"noisemod: {line}", file=sys.stderr)))
        expand(spec, args.budget)
    except SpecNotFound as e:
        raise UsageError(f"invalid SPEC={args.spec!r}: {e}") from None
    except FileNotFoundError:
        raise UsageError(f"invalid SPEC={args.spec!r}: no such file") from None
    except ValueError as e:
        raise UsageError(str(e)) from None
    if args.out is None and not args.dry_run:
        raise UsageError("sweep needs --out DIR, the sweep folder (a dry run without it plans for sweeps/NAME-BUDGET)")

    from .experiments.archive import ArchiveError
    from .experiments.executors import ExecutorError

    try:
        records = run_sweep(
            args.spec,
            args.out or Path("sweeps") / f"{spec.name}-{args.budget}",
            jobs=args.jobs,
            budget=args.budget,
            data_root=args.data_root,
            dry_run=args.dry_run,
            executor=args.executor,
            ray_address=args.ray_address,
            archive=args.archive,
            limit=args.limit,
        )
    except ExecutorError as e:
        raise UsageError(str(e).replace("invalid executor=", "invalid --executor=")) from None
    except ArchiveError as e:  # the spec changed under archived runs
        raise UsageError(str(e)) from None
    return exit_code(records)


def cmd_archive(args) -> int:
    from .experiments.archive import ArchiveError, archive_sweep, verify_archive

    if args.verify is not None:
        if args.sweep_dir is not None or args.partial:
            raise UsageError("--verify takes the archive alone: noisemod archive --verify results/NAME")
        try:
            print(f"{args.verify}: verified {verify_archive(args.verify)} runs")
        except ArchiveError as e:
            raise UsageError(str(e)) from None
        return 0
    if args.sweep_dir is None or args.dest is None:
        raise UsageError("archive takes a sweep folder and the archive to write (DIR DEST), or --verify ARCHIVE")
    try:
        summary = archive_sweep(args.sweep_dir, args.dest, partial=args.partial)
    except ArchiveError as e:
        raise UsageError(str(e)) from None
    pending = f", {len(summary.pending)} not finished (left out)" if summary.pending else ""
    print(f"{summary.path}: {len(summary.archived)} runs{pending}, {summary.bytes / 1e6:.2f} MB")
    return 0


def cmd_claims(args) -> int:
    from .analysis import CLAIMS
    from .analysis.claims import ClaimError, evaluate_claims, verdict_table

    try:
        results = evaluate_claims(args.claims or CLAIMS, args.results)
    except ClaimError as e:
        raise UsageError(str(e)) from None
    print(json.dumps([r.to_dict() for r in results], indent=1) if args.json else verdict_table(results))
    return 0


def cmd_validate(args) -> int:
    """``validate``: which yardsticks order the validation's controls as expected (the rule in
    noisemod.analysis.validation), as a table or JSON."""
    from .analysis import CLAIMS
    from .analysis.claims import ClaimError, load_rules
    from .analysis.validation import ValidationError, validate, validation_table

    try:
        rules = load_rules(args.claims or CLAIMS)
        archive = Path(args.results) / rules["validation"] if args.archive is None else Path(args.archive)
        result = validate(archive, rules["robust_accuracy"])
    except (ClaimError, ValidationError) as e:
        raise UsageError(str(e)) from None
    if args.json:
        rows = [
            {"yardstick": y, "dataset": d, "model": m, "status": r.status, "checks": r.checks, "reasons": r.reasons}
            for (y, d, m), r in result.results.items()
        ]
        print(json.dumps(rows, indent=1))
    else:
        print(validation_table(result))
    return 0


def cmd_docs(args) -> int:
    from .analysis.claims import ClaimError
    from .analysis.docgen import DocError, Sources, check

    sources = Sources(results=Path(args.results), claims=Path(args.claims) if args.claims else Sources().claims)
    try:
        stale = check(args.files, sources, write=not args.check)
    except (ClaimError, DocError, FileNotFoundError) as e:
        raise UsageError(str(e)) from None
    for path, parts in stale.items():
        print(f"{path}: {'out of date' if args.check else 'rewrote'}: {', '.join(parts)}")
    if not stale:
        print("every generated part is up to date")
    return 1 if stale and args.check else 0


def cmd_denoiser(args) -> int:
    """``denoiser train``: train (or find cached) the dataset's denoiser, print its PSNR per sigma."""
    from .data.datasets import DATASETS
    from .denoiser import DenoiserConfig, build_denoiser

    if args.dataset.replace("_", "-") not in DATASETS:
        raise UsageError(f"invalid --dataset={args.dataset!r}: unknown dataset; known: {', '.join(DATASETS)}")
    given = {k: getattr(args, k) for k in ("steps", "batch_size", "width", "seed") if getattr(args, k) is not None}
    if args.sigma is not None:
        try:
            given["sigmas"] = tuple(float(v) for v in args.sigma.split(","))
            DenoiserConfig(sigmas=given["sigmas"])
        except ValueError:
            raise UsageError(f"invalid --sigma={args.sigma!r}: expected positive numbers, comma-separated") from None
    config = DenoiserConfig(**given, conditional=not args.unconditional)
    log = (lambda *_: None) if args.quiet else (lambda line: print(line, file=sys.stderr))
    _, record = build_denoiser(
        args.dataset.replace("_", "-"),
        config,
        data_root=args.data_root,
        rebuild=args.rebuild,
        progress=not args.quiet,
        log=log,
    )
    shown = {k: record[k] for k in ("dataset", "config", "psnr", "build_seconds", "path", "cached")}
    if args.json:
        print(json.dumps(shown))
        return 0
    print(f"{record['dataset']} denoiser ({'cached' if record['cached'] else 'built'}): {record['path']}")
    print(f"built in {record['build_seconds']:.0f} s; test-set PSNR (dB), noisy input -> denoised:")
    for sigma, row in record["psnr"].items():
        given = row.get("denoised_psnr_given_class")
        given = f"; given the class {given:6.2f}" if given is not None else ""
        line = f"{row['noisy_psnr']:6.2f} -> {row['denoised_psnr']:6.2f}  (gain {row['gain']:+.2f}){given}"
        print(f"  sigma {sigma:<5} {line}")
    return 0


def _add_denoiser_parser(sub) -> None:
    p = sub.add_parser(
        "denoiser",
        help="train the dataset's denoiser that score_alignment needs",
        description="Denoisers trained by denoising score matching, cached under the noisemod cache "
        "(keyed by dataset, settings and training data): the data's score for --metrics score_alignment.",
    )
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    t = actions.add_parser(
        "train",
        help="train it (or find it in the cache) and print its test-set PSNR per sigma",
        description="Train a sigma-conditioned U-Net on the training split (all of it) at the noise "
        "levels given, cache it, and print the test-set PSNR of the noisy input and of the denoised one.",
    )
    t.add_argument("--dataset", required=True, help="dataset name, e.g. mnist, fashion-mnist, cifar10")
    t.add_argument("--sigma", help="noise levels (std, images in [0, 1]), comma-separated (default: 0.1,0.25,0.5)")
    t.add_argument("--steps", type=_typed("steps", int, 1), help="Adam steps (default: 2000)")
    t.add_argument("--batch-size", type=_typed("batch_size", int, 1), help="images per step (default: 64)")
    t.add_argument("--width", type=_typed("width", int, 1), help="channels of the U-Net's first level (default: 16)")
    t.add_argument("--seed", type=_typed("seed", int, 0), help="initialization and batches (default: 0)")
    t.add_argument("--rebuild", action="store_true", help="train again even when cached")
    t.add_argument(
        "--unconditional",
        action="store_true",
        help="without the class (default: class-conditional, for both score_alignment and class_score_alignment)",
    )
    t.add_argument("--json", action="store_true", help="print one JSON object: the record of the denoiser")
    _shared(t, "data_root", " (default: $NOISEMOD_DATA)")
    _shared(t, "quiet")
    t.set_defaults(func=cmd_denoiser)


def cmd_report(args) -> int:
    from .analysis.report import write_report

    html, md = write_report(args.sweep_dir, data_root=args.data_root)
    print(html)
    print(md)
    return 0


def cmd_figures(args) -> int:
    from .analysis.figures import headline, make_figures
    from .analysis.tables import load_results

    if args.headline:
        written = headline([r for folder in args.sweep_dir for r in load_results(folder)], args.headline)
    elif len(args.sweep_dir) == 1:
        written = make_figures(args.sweep_dir[0], out_dir=args.out, data_root=args.data_root)
    else:
        raise UsageError("figures takes one sweep folder (several only with --headline)")
    for path in written:
        print(path)
    return 0


#: Options several subcommands share, declared once: flags and argparse keywords. A subcommand
#: completes the help with its own note (what the default is there) and may add keywords.
SHARED = {
    "run_dir": (("run_dir",), dict(metavar="RUN_DIR")),
    "sweep_dir": (("sweep_dir",), dict(metavar="DIR", help="a folder written by noisemod sweep")),
    "out": (("--out",), dict(help="")),
    "n": (("-n", "--n"), dict(help="")),
    "data_root": (("--data-root",), dict(help="folder holding the datasets")),
    "device": (("--device",), dict(help="cpu, cuda, cuda:N or auto")),
    "quiet": (("-q", "--quiet"), dict(action="store_true", help="no progress bars or per-epoch lines")),
    "results": (("--results",), dict(default="results", help="the archive's root folder (default: results)")),
}


def _shared(p: argparse.ArgumentParser, name: str, note: str = "", **kwargs) -> None:
    """Add the shared option ``name`` (:data:`SHARED`) to ``p``, its help followed by ``note``."""
    flags, spec = SHARED[name]
    spec = {**spec, **kwargs}
    if "help" in spec:
        spec["help"] += note
    p.add_argument(*flags, **spec)


def _names(names, default: str) -> str:
    """A registry's names for --help, ``default`` marked: ``gradient (default), saliency, ...``."""
    return ", ".join(f"{n} (default)" if n == default else n for n in names)


def _explainer_names() -> str:
    from .explainers import list_explainers

    return _names(list_explainers(), "gradient")


def _doc_kinds() -> list[str]:
    from .analysis.docgen import KINDS

    return list(KINDS)


def _executor_help() -> str:
    from .experiments.executors import EXECUTORS

    return (
        f"where runs execute: {_names(EXECUTORS, 'local')}; local: a process pool here, GPUs round-robin; ray: one "
        "Ray task per run (a GPU each, or CPUs / --jobs of the cluster's)"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="noisemod", description=__doc__.split("\n\n")[0])
    parser.add_argument("--version", action="version", version=f"noisemod {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "train",
        help="train one model into a run directory",
        description="Train one model with one of the registered methods (below) into a run directory.",
        epilog=_methods_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_train_options(p)
    _shared(p, "out", "run directory to create (or to continue with --resume)", required=True)
    p.add_argument("--resume", action="store_true", help=f"continue an interrupted run from RUN_DIR/{RunDir.LAST}")
    _shared(p, "quiet")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser(
        "evaluate",
        help="test accuracy, VII and optionally robust accuracy of a run",
        description="Evaluate the best checkpoint of a run: test accuracy, VII (Definition 3) and, "
        f"with --robust, accuracy under PGD; also written to RUN_DIR/{RunDir.EVALUATION}.",
    )
    _shared(p, "run_dir")
    p.add_argument(
        "--robust",
        action="store_true",
        help="also robust accuracy on the whole test set: PGD-50 from a random start, at the run's eps and norm "
        "for adversarial methods, else the dataset's PGD eps (Linf)",
    )
    p.add_argument(
        "--robust-images", type=_typed("robust_images", int, 1), help="with --robust: the first N test images"
    )
    p.add_argument(
        "--eps",
        type=_typed("eps", float, 0),
        help=f"with --robust: the attack radius (default: the run's, else the dataset's PGD eps); each radius's "
        f"result is kept in RUN_DIR/{RunDir.ROBUSTNESS}",
    )
    p.add_argument("--metrics", help=_metrics_help())
    p.add_argument("--explainer", help=f"attribution method: {_explainer_names()}")
    p.add_argument(
        "--floor", action="store_true", help="also each metric for a freshly initialized model (the run's seed)"
    )
    _shared(p, "n", "the first N test images (default: all)", type=_typed("n", int))
    p.add_argument(
        "--score-sigma",
        type=_typed("score_sigma", float, 0),
        help="with --metrics [class_]score_alignment: the noise level of the data's score, one the denoiser "
        "was trained at (default: 0.25; see noisemod denoiser train)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object: metric -> value (and <metric>_floor)")
    p.add_argument(
        "--cascading",
        action="store_true",
        help="instead: cascading randomization (Adebayo et al. 2018), the Spearman correlation between the "
        "explanations of the model and of the model re-initialized from the top module down (n default 100)",
    )
    p.add_argument(
        "--absolute",
        action="store_true",
        help="with --cascading: correlate the attributions' absolute values (the harder test)",
    )
    p.add_argument(
        "--yardsticks",
        action="store_true",
        help=f"instead: every yardstick `noisemod validate` checks (each explainer, metric, score pairing, sigma, "
        f"point and pixels) and its floor, on the first N test images (n default 500), in RUN_DIR/{RunDir.YARDSTICKS}",
    )
    _shared(p, "data_root", " (default: the run's)")
    _shared(p, "device")
    _shared(p, "quiet")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser(
        "explain",
        help="gradient maps of a run as a PNG",
        description="Write the best model's input-gradient maps (scaled to [0, 1]) beside their inputs.",
    )
    _shared(p, "run_dir")
    p.add_argument("images", nargs="*", metavar="IMAGE", help="image files (default: a grid of test images)")
    _shared(p, "out", f"PNG path (default: RUN_DIR/{RunDir.GRADIENTS})")
    _shared(p, "n", "number of test images (default: 12)", type=_typed("n", int, 1), default=12)
    p.add_argument("--explainers", default="gradient", help=f"comma-separated, one row each: {_explainer_names()}")
    _shared(p, "data_root", " (default: the run's)")
    p.set_defaults(func=cmd_explain)

    p = sub.add_parser(
        "demo",
        help="standard vs noise modulation side by side (the README's main job)",
        description="Train standard and noise-modulated models, print accuracy, VII and training "
        "time, and write one PNG comparing their gradient maps.",
    )
    p.add_argument("--dataset", default="digits", help="digits (embedded, default) or e.g. mnist with --data-root")
    p.add_argument("--model", default="lenet", help="model name (default: lenet)")
    _shared(p, "data_root")
    p.add_argument("--epochs", type=_typed("epochs", int, 1), help="epochs (default: 50 on digits, else 1)")
    _shared(p, "out", "output folder (default: demo-out)", default="demo-out")
    p.add_argument("--fresh", action="store_true", help="retrain even if finished runs are in --out")
    _shared(p, "quiet")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser(
        "sweep",
        help="run every run of an experiment spec (YAML), N at a time",
        description="Run the grid of an experiment spec (a bundled one by name, e.g. fig3; --list lists them; or "
        f"a spec file) into DIR: completed runs are skipped, interrupted ones resumed, and DIR/{SweepDir.RESULTS} "
        "holds one row per finished run. A file that exists wins over a bundled spec of the same name.",
    )
    p.add_argument(
        "spec", metavar="SPEC", nargs="?", help="a bundled spec's name (e.g. fig3, protocol) or a spec file (YAML)"
    )
    p.add_argument("--list", action="store_true", help="list the bundled specs and the first line of each description")
    _shared(
        p,
        "out",
        f"sweep folder ({SweepDir.RUNS}/, {SweepDir.RESULTS}, {SweepDir.SWEEP}); required but for --dry-run, which "
        "plans for sweeps/NAME-BUDGET without it",
    )
    p.add_argument("--jobs", type=_typed("jobs", int, 1), default=1, help="runs at a time (default: 1)")
    p.add_argument("--budget", default="paper", help="budget named in the spec, e.g. paper or cpu (default: paper)")
    _shared(p, "data_root", ", passed to every run")
    p.add_argument("--dry-run", action="store_true", help="print the runs and their commands, run nothing")
    p.add_argument("--executor", default="local", help=_executor_help())
    p.add_argument("--ray-address", help="the Ray cluster (default: $RAY_ADDRESS; none: start a local Ray instance)")
    p.add_argument(
        "--archive",
        metavar="DEST",
        help="a results archive (e.g. results/NAME): restore the runs it holds that --out lacks, and archive every "
        "finished run there after each run ends",
    )
    p.add_argument(
        "--limit",
        metavar="N",
        type=_typed("limit", int, 1),
        help="work only on the first N runs of the spec's order under the budget (complete ones count), e.g. the "
        "runs a figure's claims read; a sweep without it goes on with the rest",
    )
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser(
        "archive",
        help="copy a finished sweep into the results archive (no checkpoints), or verify an archive",
        description=f"Copy the spec, {SweepDir.SWEEP}, {SweepDir.RESULTS} and each finished run's config, result, "
        "metrics, interpretability and robustness into DEST (e.g. results/NAME), replacing it at once; an "
        "unfinished or corrupt run is refused, naming it, and nothing is written. With --verify, check that an "
        f"archive's {SweepDir.RESULTS} is what its runs' own files give (exit 2 naming the run and the column "
        "where they disagree, or the file that cannot be read).",
    )
    _shared(p, "sweep_dir", nargs="?")
    p.add_argument("dest", metavar="DEST", nargs="?", help="the archive folder, e.g. results/fig3-cpu")
    p.add_argument("--partial", action="store_true", help="archive the finished runs of a sweep still running")
    p.add_argument("--verify", metavar="ARCHIVE", help="verify the archive ARCHIVE (e.g. results/NAME), write nothing")
    p.set_defaults(func=cmd_archive)

    p = sub.add_parser(
        "claims",
        help="the verdict of each claim, computed from the results archive",
        description="Evaluate every claim of a claims file (by default the one that comes with the package) on the "
        "archived sweeps it names: the comparisons with their CI and p-values, and the verdict by the rule in "
        "noisemod.analysis.claims. An archive that does not verify (noisemod archive --verify) is refused.",
    )
    p.add_argument("claims", metavar="CLAIMS", nargs="?", help="the claims file (default: the bundled claims.yaml)")
    _shared(p, "results")
    p.add_argument("--json", action="store_true", help="every claim, comparison and verdict as JSON")
    p.set_defaults(func=cmd_claims)

    p = sub.add_parser(
        "validate",
        help="which yardsticks (explainer, metric, score pairing, sigma, point, pixels) pass their validation",
        description="Check every yardstick of the validation archive against its controls: positive controls "
        "(robust adversarial training, Gaussian noise augmentation, input-gradient regularization) above standard "
        "training above the floor and shuffled labels, by the rule in noisemod.analysis.validation. A metric "
        "judges a claim on a dataset only where it passed.",
    )
    p.add_argument("archive", metavar="ARCHIVE", nargs="?", help="(default: results/<the claims file's validation>)")
    _shared(p, "results")
    p.add_argument("--claims", help="the claims file (default: the bundled claims.yaml)")
    p.add_argument("--json", action="store_true", help="every yardstick's status, checks and reasons as JSON")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser(
        "docs",
        help="rewrite the generated parts of Markdown docs from the results archive",
        description="Rewrite each '<!-- generated: KIND ... -->' part of the files (kinds: "
        f"{', '.join(_doc_kinds())}; see noisemod.analysis.docgen) from the archive and the claims file. With --check, "
        "change nothing and exit 1 naming the parts that are out of date.",
    )
    p.add_argument(
        "files", metavar="FILE", nargs="+", help="Markdown files, e.g. README.md docs/RESULTS.md docs/results/*.md"
    )
    _shared(p, "results")
    p.add_argument("--claims", help="the claims file (default: the bundled claims.yaml)")
    p.add_argument("--check", action="store_true", help="write nothing; exit 1 if a part is out of date")
    p.set_defaults(func=cmd_docs)

    p = sub.add_parser(
        "figures",
        help="the paper's figures for a finished sweep (PNG and SVG)",
        description="Make the figures that apply to a sweep folder (fig1-fig5) as PNG and SVG; with --headline, "
        "only the docs' headline figure of one or more archives (each method's VII and alignment gained over "
        "standard training and its robust accuracy, against its training time).",
    )
    _shared(p, "sweep_dir", nargs="+", help="a folder written by noisemod sweep (several with --headline)")
    p.add_argument("--headline", metavar="FILE", help="draw the headline figure of the folders into FILE (.png, .svg)")
    _shared(p, "out", f"output folder (default: DIR/{SweepDir.FIGURES})")
    _shared(p, "data_root", " (default: the runs')")
    p.set_defaults(func=cmd_figures)

    p = sub.add_parser(
        "report",
        help="self-contained HTML (and Markdown) report of a sweep",
        description=f"Write DIR/{SweepDir.REPORT_HTML} (self-contained) and DIR/{SweepDir.REPORT_MD}: results "
        "table, figures, settings, budget, and the commands to reproduce them.",
    )
    _shared(p, "sweep_dir")
    _shared(p, "data_root", " (default: the runs')")
    p.set_defaults(func=cmd_report)

    _add_denoiser_parser(sub)
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
