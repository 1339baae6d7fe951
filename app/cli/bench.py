"""`lineproof bench` and `lineproof bench-compare`: hardware benchmarks from the command line."""

from __future__ import annotations

import argparse
import json
from typing import Any

from app.cli.common import open_project, show_progress
from app.core.errors import LineproofError


def _shapes(items: list[str] | None) -> dict[str, list[int]]:
    from app.core.models.bench.config import parse_shapes

    return parse_shapes(items)


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return str(value)


def cmd_bench(args: argparse.Namespace) -> int:
    """Benchmark one model version on this PC and record the run."""
    from app.core.models.bench import BenchConfig, run_benchmark

    config = BenchConfig(runtime=args.runtime, device=args.device, batch=args.batch, shapes=_shapes(args.shape),
                         threads=args.threads, streams=args.streams, hint=args.hint, precision=args.precision or "",
                         mode=args.mode, seconds=args.seconds, iterations=args.iterations, warmup=args.warmup,
                         dataset_id=args.dataset or "", timeout_s=args.timeout)
    with open_project(args.path) as project:
        result = run_benchmark(project, args.model, config, show_progress(args.quiet or args.format == "json"),
                               site=args.site or "")
    if args.format == "json":
        print(json.dumps(result.as_dict(), indent=2, default=str))
    elif result.status != "ok":
        print(f"Run {result.run_id}: FAILED (recorded). {result.reason}")
    else:
        f = result.figures
        print(f"Run {result.run_id}: {result.version_id} on {config.runtime} {config.device}, batch {config.batch}, "
              f"{config.mode}" + (f", {config.hint} hint" if config.runtime == "openvino" else ""))
        print(f"  load {_fmt(f['load_ms'], 1)} ms, compile {_fmt(f['compile_ms'], 1)} ms, "
              f"first inference {_fmt(f['first_ms'], 2)} ms")
        print("  latency ms: " + "  ".join(f"{k[:-3]} {_fmt(f[k])}" for k in
                                           ("p50_ms", "p90_ms", "p95_ms", "p99_ms", "p999_ms", "max_ms", "mean_ms")))
        print(f"  throughput {_fmt(f['throughput'], 1)} inferences x batch / s over {f['inferences']:,} inferences,"
              f" peak RSS {_fmt(f['peak_rss_mb'], 0)} MB")
        load = result.background_load
        print(f"  background CPU load {load:.1%}" + ("  NOISY: other work ran during the run; rerun on a quiet PC"
                                                     if result.noisy else "") if load is not None else "")
        fp = result.fingerprint
        print(f"  hardware {fp.get('cpu_model')}, {fp.get('physical_cores')}/{fp.get('logical_cores')} cores, "
              f"{fp.get('ram_gb')} GB, {fp.get('os')} (fingerprint {fp.get('fingerprint_id')})")
    return 0 if result.status == "ok" else 1


def cmd_bench_compare(args: argparse.Namespace) -> int:
    """Recorded runs side by side, as ratios to the first (baseline) run."""
    from app.core.models.bench.store import compare_runs, list_runs

    with open_project(args.path, read_only=True, allow_snapshot=True) as project:
        with project.reading() as con:
            if args.runs:
                frame = compare_runs(con, args.runs)
                missing = sorted(set(args.runs) - set(frame["run_id"].to_list()))
                if missing:
                    raise LineproofError(f"No benchmark run {', '.join(missing)} in this project.",
                                         "List the runs with `lineproof bench-compare PROJECT`.")
            else:
                frame = list_runs(con, version_id=args.model)
    if args.format == "json":
        print(json.dumps(frame.to_dicts(), indent=2, default=str))
        return 0
    if args.format == "csv":
        print(frame.drop([c for c in frame.columns if frame[c].dtype.is_nested()]).write_csv(), end="")
        return 0
    if frame.is_empty():
        print("No benchmark runs yet: lineproof bench PROJECT --model M:V --runtime onnxruntime")
        return 0
    print(f"{'run':<23} {'version':<16} {'runtime':<11} {'device':<6} {'hint':<10} {'b':>3} {'p50 ms':>9} "
          f"{'p99 ms':>9} {'thrpt/s':>10} {'load':>5} {'hw':<16} status")
    for r in frame.iter_rows(named=True):
        ratio = ""
        if "throughput_vs_base" in r and r.get("throughput_vs_base") is not None:
            ratio = f"  x{r['throughput_vs_base']:.2f} thrpt, x{r['p50_ms_vs_base']:.2f} p50"
        status = r["status"] + (" NOISY" if r["noisy"] else "") + (f": {r['reason']}" if r["reason"] else "")
        print(f"{r['run_id']:<23} {r['version_id']:<16} {r['runtime']:<11} {r['device']:<6} {r['hint'] or '-':<10} "
              f"{r['batch']:>3} {_fmt(r['p50_ms']):>9} {_fmt(r['p99_ms']):>9} {_fmt(r['throughput'], 1):>10} "
              f"{_fmt(r['background_load'] * 100 if r['background_load'] is not None else None, 0):>4}% "
              f"{r['fingerprint_id'] or '-':<16} {status}{ratio}")
    return 0


def run_child() -> int:
    """The benchmark process when Lineproof runs from a frozen bundle (no `python -m` there)."""
    from app.core.models.bench.child import main

    return main()


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Register the benchmark commands."""
    p = sub.add_parser("bench", help="benchmark a model version on this PC (recorded with the hardware)",
                       description="Runs in a separate process; a crash, hang or runaway allocation is recorded "
                                   "as a failed run. Exit code 0 when the run succeeded, 1 when it failed.")
    p.add_argument("path", help="project folder")
    p.add_argument("--model", required=True, metavar="M:V", help="model version id, e.g. seam-vision:v1")
    p.add_argument("--runtime", choices=("onnxruntime", "openvino"), default="onnxruntime")
    p.add_argument("--device", default="CPU", help="OpenVINO device (CPU, GPU, NPU, AUTO); CPU for ONNX Runtime")
    p.add_argument("--hint", choices=("latency", "throughput", "none"), default="latency",
                   help="OpenVINO performance hint (default latency)")
    p.add_argument("--precision", choices=("f32", "f16", "bf16"), help="OpenVINO inference precision hint")
    p.add_argument("--mode", choices=("sync", "async"), default="sync",
                   help="sync: one request at a time; async: several in flight (throughput)")
    p.add_argument("--batch", type=int, default=1, help="batch size (fills a dynamic first dimension)")
    p.add_argument("--shape", action="append", metavar="INPUT=D1,D2,...", help="full shape of an input")
    p.add_argument("--threads", type=int, default=0, help="inference threads (0: the runtime decides)")
    p.add_argument("--streams", type=int, default=0, help="OpenVINO streams / concurrent requests (0: decide)")
    p.add_argument("--seconds", type=float, default=10.0, help="measurement duration (default 10)")
    p.add_argument("--iterations", type=int, default=0, help="stop after this many inferences instead")
    p.add_argument("--warmup", type=int, default=10, help="inferences before measuring (default 10)")
    p.add_argument("--dataset", metavar="ID", help="real rows from a registered dataset instead of synthetic input")
    p.add_argument("--site", help="site to record with the run (default: the project's)")
    p.add_argument("--timeout", type=float, default=0.0, help="kill the benchmark after this many seconds")
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("bench-compare", help="compare recorded benchmark runs (versions, devices, sites)")
    p.add_argument("path", help="project folder")
    p.add_argument("runs", nargs="*", help="run ids to compare, the first is the baseline (default: list all)")
    p.add_argument("--model", metavar="M:V", help="only runs of this version")
    p.add_argument("--format", choices=("table", "csv", "json"), default="table")
    p.set_defaults(func=cmd_bench_compare)

