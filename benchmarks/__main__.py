"""Run every benchmark: ``python -m benchmarks [--quick] [--device D] [--repeats N] [--data-root DIR] [--only NAME]``.

Each ``benchmarks/bench_*.py`` module exposes ``main(argv=None)``; it gets the common options
it accepts (an option is passed when the module's source mentions it). A module that takes
``--data-root`` needs the datasets: it is skipped, with a message, when the folder is absent
(default: ``../shared/data`` relative to the repository root, or ``$NOISEMOD_DATA``).
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import os
import sys
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent


def discover() -> list[str]:
    return sorted(p.stem for p in HERE.glob("bench_*.py"))


def module_argv(source: str, args) -> list[str]:
    argv = []
    if args.quick and "--quick" in source:
        argv.append("--quick")
    if args.device is not None and "--device" in source:
        argv += ["--device", args.device]
    if args.repeats is not None and "--repeats" in source:
        argv += ["--repeats", str(args.repeats)]
    if "--data-root" in source:
        argv += ["--data-root", str(args.data_root)]
    return argv


def call_main(module, argv: list[str]):
    main = module.main
    params = inspect.signature(main).parameters
    if params:
        return main(argv)
    saved = sys.argv  # a main() that reads sys.argv itself
    sys.argv = [module.__name__] + argv
    try:
        return main()
    finally:
        sys.argv = saved


def main(argv=None) -> int:
    default_root = Path(os.environ.get("NOISEMOD_DATA", REPO.parent / "shared" / "data"))
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="fewer repetitions and smaller workloads")
    p.add_argument("--device", default=None, help="torch device passed to every benchmark (default: theirs, cpu)")
    p.add_argument("--repeats", type=int, default=None, help="timed rounds per comparison")
    p.add_argument("--data-root", type=Path, default=default_root, help=f"dataset folder (default: {default_root})")
    p.add_argument(
        "--only",
        action="append",
        default=None,
        metavar="NAME",
        help="run only this benchmark (e.g. bench_core or core); repeatable",
    )
    args = p.parse_args(argv)
    args.data_root = args.data_root.resolve()

    names = discover()
    if args.only:
        wanted = {n if n.startswith("bench_") else f"bench_{n}" for n in args.only}
        unknown = wanted - set(names)
        if unknown:
            p.error(f"unknown benchmark(s) {', '.join(sorted(unknown))}; available: {', '.join(names)}")
        names = [n for n in names if n in wanted]

    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    failed, skipped = [], []
    for name in names:
        source = (HERE / f"{name}.py").read_text()
        print(f"\n######## {name}", flush=True)
        if "--data-root" in source and not args.data_root.is_dir():
            print(f"skipped: data folder {args.data_root} not found (pass --data-root or set NOISEMOD_DATA)")
            skipped.append(name)
            continue
        argv_m = module_argv(source, args)
        t0 = time.perf_counter()
        try:
            module = importlib.import_module(f"benchmarks.{name}")
            rc = call_main(module, argv_m)
        except SystemExit as e:  # argparse errors, sys.exit() in a module
            rc = e.code
        except Exception:
            traceback.print_exc()
            rc = 1
        sys.stdout.flush()
        print(
            f"######## {name}: {'done' if not rc else f'FAILED ({rc})'} in {time.perf_counter() - t0:.1f} s", flush=True
        )
        if rc:
            failed.append(name)
    print(
        f"\nbenchmarks: {len(names) - len(failed) - len(skipped)} ran, {len(skipped)} skipped, "
        f"{len(failed)} failed{': ' + ', '.join(failed) if failed else ''}"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
