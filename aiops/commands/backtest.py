"""``aiops backtest``: replay recorded history through a detector and score it against labels.

Three sources of history:

* ``aiops backtest DATA --detector NAME --out DIR [--labels windows.json]``: NAB-format CSV files
  (``timestamp,value``); with labels, a report with NAB scores and operator metrics next to the
  null, random and rolling z-score baselines computed in the same run.
* ``aiops backtest DATA --labels windows.json --cv --out DIR``: leave one category folder out at
  a time; the NAB threshold (and, with ``--grid``, the detector configuration) is chosen on the
  other categories and scored on the held-out one, next to the in-sample figure and the baselines,
  and at the policy's warning threshold, where no threshold is learnt at all.
* ``aiops backtest DATA --format smd --out DIR``: multi-column SMD/ASD layout for the
  multivariate detector; with ``--cv``, leave one machine out (configuration and threshold chosen
  on the other machines) next to the PCA-reconstruction and IsolationForest baselines.
* ``aiops backtest --prometheus URL --query PROMQL --start ... --end ... --out DIR``: a user's own
  Prometheus history, to see what the daemon would have flagged, and when, before enabling it.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from aiops import plugins
from aiops.commands._common import EXIT_DEGRADED, EXIT_OK, add_config_arg, fail
from aiops.collect.collector import signal_info
from aiops.collect.plausible import rejected
from aiops.config import ConfigError, load_config, parse_duration
from aiops.config.policy import SeverityThresholds
from aiops.config.signals import SignalConfig
from aiops.evaluation.baselines import NullBaseline, RandomBaseline, RollingZScore
from aiops.evaluation.corpus import CorpusEvaluation, evaluate_corpus, load_instants
from aiops.evaluation.cv import CvResult, category_folds, format_cv_table, leave_one_out, param_grid
from aiops.evaluation.errors import Failure
from aiops.evaluation.metrics import alarm_onsets
from aiops.evaluation.multicolumn import (
    MATRIX_BASELINES,
    FeatureZScore,
    IsolationForestBaseline,
    PcaReconstruction,
    RandomMatrixBaseline,
    Scored,
    evaluate_machines,
    find_machines,
    replay_machines,
)
from aiops.evaluation.multicolumn_cv import format_machines_cv, machines_cross_validate, points_per_second, replay_candidates
from aiops.evaluation.nab import PROFILES, load_windows, prepare_corpus, probationary_length
from aiops.evaluation.nab_cv import nab_cross_validate
from aiops.evaluation.plots import plot_series
from aiops.model import SignalInfo
from aiops.evaluation.signal_scoring import adhoc_signal, signal_scorer_factory
from aiops.evaluation.replay import (
    Replayed,
    ReplayError,
    SeriesScorer,
    find_series_files,
    load_corpus,
    load_scorer,
    replay_corpus,
    replay_series,
    write_replayed,
)

DEFAULT_DETECTOR = "ensemble"
DEFAULT_MULTIVARIATE = "multivariate"
# The score at which the daemon's default policy raises a warning: NAB under --cv is also scored
# there (or at --threshold), a reading with no threshold learnt from labels.
ALARM_THRESHOLD = SeverityThresholds().warning
# Computed in the same run as every labelled univariate report.
BASELINES: tuple[tuple[str, Callable[[], SeriesScorer]], ...] = (
    ("null", NullBaseline), ("random", RandomBaseline), ("rolling_zscore", RollingZScore),
)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "backtest",
        help="replay history through a detector; score it against labels (NAB, SMD)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("data", nargs="?", type=Path, help="a NAB-format CSV, a folder of them, or an SMD-layout folder")
    p.add_argument("--detector", help=f"detector plugin (default: {DEFAULT_DETECTOR}; {DEFAULT_MULTIVARIATE} for --format smd)")
    p.add_argument(
        "--param", action="append", default=[], metavar="KEY=VALUE",
        help="detector parameter (VALUE is read as JSON when it parses, else as text); repeatable",
    )
    p.add_argument("--out", type=Path, required=True, help="output folder (scores, plots, summary.json)")
    p.add_argument("--labels", type=Path, help="label windows, NAB combined_windows.json shape")
    p.add_argument(
        "--instants", type=Path,
        help="labelled anomaly instants for lead times (default: combined_labels.json next to --labels)",
    )
    p.add_argument(
        "--cv", action="store_true",
        help="cross-validate: hold out each top-level folder of DATA in turn (NAB categories; needs --labels) "
        "or, with --format smd, each machine; choose the threshold and any --grid value on the others",
    )
    p.add_argument(
        "--grid", action="append", default=[], metavar="KEY=V1,V2,...",
        help="with --cv: detector parameter values to choose among inside each training fold; repeatable",
    )
    p.add_argument("--format", choices=["nab", "smd"], default="nab", help="layout of DATA (default: nab)")
    p.add_argument("--step", default=None, help="sampling step: SMD rows (default 1m) or the Prometheus query step (default 1m)")
    p.add_argument(
        "--threshold", type=float, default=None,
        help="score that counts as an alarm where no labels choose one: Prometheus and SMD (default 0.9, policy's critical);"
        " with NAB --cv, the fixed threshold of the reading that learns none (default 0.7, policy's warning)",
    )
    p.add_argument(
        "--signal", metavar="NAME",
        help="score as the daemon scores this catalog signal: its routing, capacity, direction and failure point"
        " (with --prometheus, its catalog query is the default --query)",
    )
    p.add_argument(
        "--capacity", type=float, metavar="X",
        help="a hard limit of the series, in its own unit: routes it to the exhaustion forecaster (overrides the signal's)",
    )
    add_config_arg(p)
    p.add_argument("--prometheus", metavar="URL", help="replay a range query from this Prometheus instead of files")
    p.add_argument("--query", metavar="PROMQL")
    p.add_argument("--start", help="ISO time or a duration before --end, e.g. 7d (default 1d)")
    p.add_argument("--end", help="ISO time (default: now)")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG per series")
    p.add_argument("--json", action="store_true", help="print the labelled report as JSON (what summary.json holds) instead of tables")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.threshold is None:
        nab_cv = args.cv and args.format == "nab" and not args.prometheus
        args.threshold = ALARM_THRESHOLD if nab_cv else SeverityThresholds().critical
    try:
        params = _parse_params(args.param)
        if args.prometheus:
            return _run_prometheus(args, params)
        if args.data is None:
            return fail("give DATA (a CSV file or folder) or --prometheus URL --query PROMQL")
        if args.format == "smd":
            return _run_smd_cv(args, params) if args.cv else _run_smd(args, params)
        if args.cv:
            return _run_nab_cv(args, params)
        if args.grid:
            return fail("--grid chooses values inside cross-validation folds; add --cv")
        return _run_nab(args, params)
    except (ReplayError, plugins.PluginError, ConfigError, ValueError, OSError) as exc:
        return fail(exc)


def _parse_params(items: Sequence[str]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise ReplayError(
                f"--param {item!r} is not KEY=VALUE",
                hint="write it as KEY=VALUE, e.g. --param window=288 (VALUE is read as JSON when it parses, else as text)",
            )
        try:
            params[key] = json.loads(text)
        except json.JSONDecodeError:
            params[key] = text
    return params


def _parse_grid(items: Sequence[str]) -> dict[str, list[Any]]:
    grid: dict[str, list[Any]] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key or not text:
            raise ReplayError(f"--grid {item!r} is not KEY=V1,V2,...", hint="write it as KEY=V1,V2,..., e.g. --grid window=100,150")
        grid[key] = [_parse_params([f"{key}={v}"])[key] for v in text.split(",")]
    return grid


def _report_failures(failed: Mapping[str, Failure]) -> int:
    """List the files that could not be replayed, then what to do about them (each hint once);
    the exit status says whether any failed."""
    if not failed:
        return EXIT_OK
    print(f"{len(failed)} file(s) could not be replayed or scored and are left out of every figure above:", file=sys.stderr)
    for rel, failure in sorted(failed.items()):
        print(f"  {rel}: {failure.reason}", file=sys.stderr)
    for hint in dict.fromkeys(f.hint for _, f in sorted(failed.items()) if f.hint):
        print(f"hint: {hint}", file=sys.stderr)
    return EXIT_DEGRADED


def _reasons(failed: Mapping[str, Failure]) -> dict[str, str]:
    """What summary.json keeps of the failures: relative path -> reason."""
    return {rel: f.reason for rel, f in sorted(failed.items())}


def _step(args: argparse.Namespace) -> timedelta:
    """``--step``, 1m by default."""
    try:
        return parse_duration(args.step or "1m")
    except ValueError:
        raise ReplayError(f"--step {args.step!r} is not a duration", hint="give the step as a duration like 30s, 1m or 5m") from None


# -- NAB-format files --------------------------------------------------------------------------
def _scorer(args: argparse.Namespace, name: str, params: dict[str, Any]) -> Callable[..., SeriesScorer]:
    """``make(labels=None)``: the plain detector, or with --signal/--capacity, the daemon's way of scoring that signal."""
    info = _signal_info(args)
    if info is None:
        plain = load_scorer(name, params)
        return lambda labels=None: plain()
    return signal_scorer_factory(name, params, info)


def _catalog(args: argparse.Namespace) -> dict[str, SignalConfig]:
    """The signal catalog the daemon would run with (the built-in one merged with --config's overrides)."""
    return load_config(args.config).resolved_signals()


def _signal_info(args: argparse.Namespace) -> SignalInfo | None:
    if args.signal is None and args.capacity is None:
        return None
    base = None
    if args.signal is not None:
        signals = _catalog(args)
        if args.signal not in signals:
            raise ReplayError(
                f"--signal {args.signal!r} is not in the catalog",
                hint="pick a signal of the catalog (aiops check-config lists them), or leave --signal out",
            )
        base = signal_info(args.signal, signals[args.signal])
    return adhoc_signal(args.capacity, base) if args.capacity is not None else base


def _as_collected(args: argparse.Namespace, frames: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """With --signal, the samples the daemon's collector would drop as impossible (the signal's
    plausible range, aiops/collect/plausible.py) are gaps here too: the backtest scores a catalog
    signal as the daemon would. Without it a file has no unit, and is scored as it is."""
    if args.signal is None:
        return frames
    plausible = _catalog(args)[args.signal].plausible()  # --signal is in the catalog: _signal_info checked it
    out = {}
    for rel, frame in frames.items():
        values = frame["value"].to_numpy(dtype=np.float64)
        masks = rejected(values, plausible)
        if masks is None:
            out[rel] = frame
            continue
        drop = masks[0] | masks[1]
        print(f"note: {rel}: {int(drop.sum())} samples of {args.signal} outside what it can read ({plausible.describe()}) "
              "are gaps, as the daemon's collector drops them", file=sys.stderr)
        out[rel] = frame.assign(value=np.where(drop, np.nan, values))
    return out


def _run_nab(args: argparse.Namespace, params: dict[str, Any]) -> int:
    name = args.detector or DEFAULT_DETECTOR
    make = _scorer(args, name, params)
    make()  # fail on bad parameters before any work
    files = find_series_files(args.data)
    windows = load_windows(args.labels) if args.labels else None
    instants = _instants(args)  # read before the replay so that a bad file fails fast
    progress = not args.quiet
    failed: dict[str, Failure] = {}
    frames = _as_collected(args, load_corpus(files, failed=failed))
    replayed = replay_corpus(frames, make, progress=progress, desc=name, failed=failed)
    write_replayed(replayed, args.out)
    if windows is None:
        summary = {"detector": name, "params": params, "threshold": args.threshold, "series": _alarm_summary(replayed, args.threshold)}
        if not args.no_plots:
            _plot_all(replayed, args.out, args.threshold, {}, progress)
        _write_summary(args.out, summary)
        _print_alarms(name, summary["series"], args.threshold)
        print(f"scores written under {args.out}; pass --labels to score them")
        return _report_failures(failed)

    windows = _labels_for(list(replayed), windows)
    unlabelled = sorted(set(replayed) - set(windows))
    if unlabelled:
        print(f"note: {len(unlabelled)} file(s) have no entry in {args.labels} and are not scored, e.g. {unlabelled[0]}", file=sys.stderr)
    fit = _scorable({k: v.frame for k, v in replayed.items() if k in windows}, windows, failed)
    scored = {k: replayed[k] for k in fit}
    if not scored:
        _report_failures(failed)
        return fail(f"none of the replayed files under {args.data} has an entry in {args.labels}; keys must be paths relative to DATA")
    if instants is not None:
        instants = _labels_for(list(scored), instants)
    evaluations = [evaluate_corpus(name, scored, windows, instants)]
    # The baselines score exactly the files the detector scored, so that the rows compare.
    labelled = {rel: frames[rel] for rel in scored}
    for base_name, factory in BASELINES:
        base = replay_corpus(labelled, factory, progress=progress, desc=base_name, failed=failed)
        evaluations.append(evaluate_corpus(base_name, base, windows, instants))
    if not args.no_plots:
        _plot_all(scored, args.out, evaluations[0].threshold, windows, progress, nab=True)
    summary = {
        "detector": name,
        "params": params,
        "data": str(args.data),
        "labels": str(args.labels),
        "files": len(scored),
        "failed": _reasons(failed),
        "results": [e.to_dict() for e in evaluations],
        "per_file": {
            rel: {profile: r.per_file[rel].raw for profile, r in evaluations[0].nab.items()} for rel in scored
        },
    }
    _write_summary(args.out, summary)
    if args.json:
        print(json.dumps(_finite(summary), default=str))
    else:
        _print_nab_report(evaluations)
    return _report_failures(failed)


def _labels_for(paths: Sequence[str], labels: Mapping[str, Any]) -> dict[str, Any]:
    """Label entries keyed by the replayed paths. Keys are relative to the corpus root, so when DATA
    is a subfolder (``nab/realTweets``) or one file, a key matches by its trailing path components."""
    out = {}
    for path in paths:
        if path in labels:
            out[path] = labels[path]
            continue
        matches = [key for key in labels if key.endswith("/" + path)]
        if len(matches) == 1:
            out[path] = labels[matches[0]]
    return out


def _instants(args: argparse.Namespace) -> dict[str, list[pd.Timestamp]] | None:
    path = args.instants or (args.labels.parent / "combined_labels.json" if args.labels else None)
    if path is None or not path.is_file():
        return None  # lead times are then measured against the window centre
    return load_instants(path)


def _print_nab_report(evaluations: Sequence[CorpusEvaluation]) -> None:
    head = f"{'detector':<16}{'standard':>9}{'low_FP':>8}{'low_FN':>8}{'prec':>7}{'recall':>7}{'F1':>7}{'ev.rec':>7}{'lead':>9}{'FA/day':>8}{'pts/s':>13}"
    print("NAB normalised scores (threshold optimised per profile over the corpus); point and event")
    print("figures at the standard threshold, point-wise without point adjustment; lead = labelled")
    print("instant minus first detection in the window (median).")
    print(head)
    print("-" * len(head))
    for e in evaluations:
        nab = e.nab
        print(
            f"{e.detector:<16}{nab['standard'].normalized:>9.1f}{nab['reward_low_FP'].normalized:>8.1f}"
            f"{nab['reward_low_FN'].normalized:>8.1f}{e.point.precision:>7.3f}{e.point.recall:>7.3f}{e.point.f1:>7.3f}"
            f"{e.events.recall:>7.2f}{_duration(e.events.median_lead_seconds):>9}{e.false_alarms_per_day:>8.2f}"
            f"{_rate(e.points_per_second):>13}"
        )


# -- NAB cross-validation -----------------------------------------------------------------------
def _run_nab_cv(args: argparse.Namespace, params: dict[str, Any]) -> int:
    if args.labels is None:
        return fail("--cv scores held-out categories against labels; pass --labels combined_windows.json")
    name = args.detector or DEFAULT_DETECTOR
    candidates = param_grid(params, _parse_grid(args.grid))
    makers = {cand: load_scorer(name, cand_params) for cand, cand_params in candidates.items()}
    for make in makers.values():
        make()  # fail on bad parameters before any work
    windows = load_windows(args.labels)
    files = [(rel, path) for rel, path in find_series_files(args.data) if rel in _labels_for([rel], windows)]
    if not files:
        return fail(f"none of the files under {args.data} has an entry in {args.labels}; keys must be paths relative to DATA")
    windows = _labels_for([rel for rel, _ in files], windows)
    progress = not args.quiet
    failed: dict[str, Failure] = {}
    frames = load_corpus(files, failed=failed)
    methods: list[tuple[str, dict[str, Callable[[], SeriesScorer]]]] = [(name, makers)]
    methods += [(base_name, {"default": factory}) for base_name, factory in BASELINES]
    replays: dict[str, dict[str, dict[str, Replayed]]] = {}
    for method, method_makers in methods:
        replays[method] = {
            cand: replay_corpus(frames, make, progress=progress, desc=f"{method} {cand}", failed=failed)
            for cand, make in method_makers.items()
        }
    # Every method and candidate is scored on the same files: those that replayed everywhere.
    common = sorted(set(frames).intersection(*(set(r) for runs in replays.values() for r in runs.values())))
    common = sorted(_scorable({rel: frames[rel] for rel in common}, windows, failed))
    if not common:
        _report_failures(failed)
        return fail("no file could be replayed; see the reasons above")
    folds = category_folds(common)
    results: list[CvResult] = []
    points: dict[str, float] = {}
    for method, runs in replays.items():
        prepared = {
            cand: prepare_corpus({rel: _naive(r[rel].frame) for rel in common}, windows) for cand, r in runs.items()
        }
        results.append(nab_cross_validate(method, folds, prepared, fixed_threshold=args.threshold))
        seconds = sum(r[rel].seconds for r in runs.values() for rel in common)
        points[method] = sum(len(r[rel].frame) for r in runs.values() for rel in common) / seconds if seconds > 0 else math.inf
    summary = {
        "detector": name, "params": params, "grid": {k: v for k, v in _parse_grid(args.grid).items()},
        "data": str(args.data), "labels": str(args.labels), "files": len(common),
        "folds": {f.name: list(f.test) for f in folds}, "failed": _reasons(failed),
        "results": [{**r.to_dict(), "points_per_second": points[r.method]} for r in results],
    }
    _write_summary(args.out, summary)
    if args.json:
        print(json.dumps(_finite(summary), default=str))
    else:
        _print_nab_cv(results, points, len(common), len(folds), args.threshold)
    return _report_failures(failed)


def _scorable(frames: Mapping[str, pd.DataFrame], windows: Mapping[str, Any], failed: dict[str, Failure]) -> list[str]:
    """The files whose labels fit their rows; the others go to ``failed`` rather than stop the corpus."""
    ok = []
    for rel, frame in frames.items():
        try:
            prepare_corpus({rel: _naive(frame.assign(anomaly_score=0.0))}, {rel: windows[rel]})
        except (ReplayError, ValueError) as exc:
            failed[rel] = Failure(f"labels do not fit the file: {exc}", exc.hint if isinstance(exc, ReplayError) else "")
            continue
        ok.append(rel)
    return ok


def _naive(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(timestamp=frame["timestamp"].dt.tz_convert(None))


def _print_nab_cv(results: Sequence[CvResult], points: Mapping[str, float], files: int, folds: int, threshold: float) -> None:
    profiles = list(PROFILES)
    labels = ["standard", "low_FP", "low_FN"]
    print(f"NAB, leave one category out ({folds} folds, {files} files). Held-out: each profile's threshold (and any")
    print("--grid value) chosen on the other categories, scored on the held-out one; in-sample: chosen on all")
    print("categories, scored on the same folds. Means over folds that have labelled windows.")
    print(format_cv_table(results, profiles, labels))
    print()
    print("Pooled: held-out raw scores of all folds added and normalised over the whole corpus (counts the")
    print("false alarms of categories without windows); 'corpus' is NAB's own in-sample figure.")
    head = f"{'method':<16}" + "".join(f"{'CV ' + x:>11}" for x in labels) + "".join(f"{'corpus ' + x:>17}" for x in labels) + f"{'pts/s':>13}"
    print(head)
    print("-" * len(head))
    for r in results:
        pooled, corpus = r.extra["held_out_pooled"], r.extra["in_sample_corpus"]
        print(
            f"{r.method:<16}" + "".join(f"{pooled[p]:>11.1f}" for p in profiles)
            + "".join(f"{corpus[p]:>17.1f}" for p in profiles) + f"{_rate(points[r.method]):>13}"
        )
    print()
    where = "the policy's warning threshold" if threshold == ALARM_THRESHOLD else "the fixed threshold"
    print(f"At {where} {threshold:g}: no threshold learnt from labels")
    print("(each fold with the --grid value chosen on the others). Fold mean and pooled, as above.")
    head = f"{'method':<16}" + "".join(f"{'mean ' + x:>14}" for x in labels) + "".join(f"{'pooled ' + x:>17}" for x in labels)
    print(head)
    print("-" * len(head))
    for r in results:
        fixed = r.extra["fixed_threshold"]
        print(
            f"{r.method:<16}" + "".join(f"{fixed['mean'][p]:>14.1f}" for p in profiles)
            + "".join(f"{fixed['pooled'][p]:>17.1f}" for p in profiles)
        )
    main = results[0]
    print()
    print(f"{main.method} per held-out fold, standard threshold and standard / low_FP / low_FN (chosen on the other folds):")
    for f in main.folds:
        thr = f.settings["threshold"]["standard"]
        ho = "  ".join(f"{f.held_out[p]:6.1f}" if math.isfinite(f.held_out[p]) else f"{'-':>6}" for p in profiles)
        raw = f" (no windows; raw {f.held_out['standard.raw']:+.2f})" if not math.isfinite(f.held_out["standard"]) else ""
        chosen = "" if f.candidate == "default" else f"  [{f.candidate}]"
        print(f"  {f.fold:<24}{f.items:>3} files  thr {thr:.3f}  {ho}{raw}{chosen}")


# -- SMD / ASD layout --------------------------------------------------------------------------
def _run_smd(args: argparse.Namespace, params: dict[str, Any]) -> int:
    name = args.detector or DEFAULT_MULTIVARIATE
    make = _matrix_scorer(name, params)
    step = _step(args).total_seconds()
    progress = not args.quiet
    names = find_machines(args.data)
    failed: dict[str, Failure] = {}
    runs: list[tuple[str, list[Scored]]] = [
        (name, replay_machines(args.data, make, step, progress=progress, desc=name, names=names, failed=failed))
    ]
    if any(s.labels is not None for s in runs[0][1]):
        baselines: list[tuple[str, Callable[[], Any]]] = [("random", RandomMatrixBaseline), ("feature_zscore", FeatureZScore)]
        if (args.data / "train").is_dir():
            baselines += [("pca_reconstruction", PcaReconstruction), ("isolation_forest", IsolationForestBaseline)]
        for base_name, factory in baselines:
            runs.append((base_name, replay_machines(args.data, factory, step, progress=progress, desc=base_name, names=names,
                                                    failed=failed)))
    # Every method is scored on the same machines: those that replayed everywhere.
    runs = [(run_name, [s for s in scored if s.machine not in failed]) for run_name, scored in runs]
    if not runs[0][1]:
        _report_failures(failed)
        return fail("no machine could be scored; see the reasons above")
    args.out.mkdir(parents=True, exist_ok=True)
    for s in runs[0][1]:
        frame = pd.DataFrame({"timestamp": pd.to_datetime(s.timestamps, unit="s", utc=True), "anomaly_score": s.scores})
        if s.labels is not None:
            frame["label"] = s.labels.astype(int)
        frame.assign(timestamp=frame["timestamp"].dt.strftime("%Y-%m-%d %H:%M:%S")).to_csv(args.out / f"{s.machine}.csv", index=False)
        if not args.no_plots:
            columns = [f"metric {j + 1}" for j in range(s.features.shape[1])]
            plotted = pd.concat([frame, pd.DataFrame(s.features, columns=columns)], axis=1)
            plot_series(plotted, args.out / "plots" / f"{s.machine}.png", title=f"{name}: {s.machine}", threshold=args.threshold, value_columns=columns)
    results = {run_name: evaluate_machines(scored, args.threshold) for run_name, scored in runs}
    _write_summary(args.out, {
        "detector": name, "params": params, "data": str(args.data), "step_seconds": step,
        "machines": [s.machine for s in runs[0][1]], "failed": _reasons(failed), "results": results,
    })
    _print_smd_report(results, args.threshold)
    return _report_failures(failed)


def _matrix_scorer(name: str, params: Mapping[str, Any]) -> Callable[[], Any]:
    """A factory of fresh multi-column detectors, checked once so that bad parameters fail before any work."""
    cls = plugins.load(plugins.DETECTORS, name)
    if not callable(getattr(cls, "score_matrix", None)):
        raise plugins.PluginError(f"detector {name!r} cannot score multi-column data (no score_matrix); use --detector {DEFAULT_MULTIVARIATE}")

    def make() -> Any:
        try:
            return cls(**params)
        except (TypeError, ValueError) as exc:
            raise plugins.PluginError(f"detector {name!r} rejected its parameters: {exc}") from exc

    make()
    return make


def _run_smd_cv(args: argparse.Namespace, params: dict[str, Any]) -> int:
    """Leave one machine out: the detector's --grid candidate and thresholds chosen on the other machines."""
    name = args.detector or DEFAULT_MULTIVARIATE
    grid = _parse_grid(args.grid)
    makers = {cand: _matrix_scorer(name, cand_params) for cand, cand_params in param_grid(params, grid).items()}
    step = _step(args).total_seconds()
    names = find_machines(args.data)
    methods = [(name, makers, args.threshold)] + [
        (base_name, {"default": factory}, getattr(factory, "default_threshold", None)) for base_name, factory in MATRIX_BASELINES
    ]
    failed: dict[str, Failure] = {}
    replays = {
        method: replay_candidates(args.data, method_makers, step, threshold, names, progress=not args.quiet, desc=method,
                                  failed=failed)
        for method, method_makers, threshold in methods
    }
    # Every method and candidate is scored on the same machines: those that replayed everywhere.
    common = [n for n in names if n not in failed]
    if len(common) < 2:
        _report_failures(failed)
        return fail("leaving one machine out needs two machines that can be scored; see the reasons above")
    folds = leave_one_out(common)
    results, points = [], {}
    for method, candidates in replays.items():
        candidates = {c: replace(runs, scored={n: runs.scored[n] for n in common}) for c, runs in candidates.items()}
        results.append(machines_cross_validate(method, folds, candidates))
        points[method] = points_per_second(candidates)
    summary = {
        "detector": name, "params": params, "grid": grid, "data": str(args.data), "step_seconds": step,
        "threshold": args.threshold, "machines": common, "failed": _reasons(failed),
        "results": [{**r.to_dict(), "points_per_second": points[r.method]} for r in results],
    }
    _write_summary(args.out, summary)
    print(f"{args.data}: leave one machine out ({len(folds)} folds).")
    print(format_machines_cv(results))
    return _report_failures(failed)


def _print_smd_report(results: Mapping[str, Mapping[str, Any]], threshold: float) -> None:
    print(f"Point-wise F1 without point adjustment. 'F1@thr' uses the fixed threshold {threshold:g} (no label peeking);")
    print("'F1@shared' the one threshold best for all machines together and 'best/machine' each machine's own")
    print("best threshold: both peek at labels and are upper bounds. F1 columns are means over machines; 'pooled'")
    print("treats all machines' rows as one series. Delay = first detection minus segment start (median).")
    head = (
        f"{'detector':<16}{'F1@thr':>8}{'pooled':>8}{'F1@shared':>10}{'pooled':>8}{'best/machine':>13}"
        f"{'ev.recall':>10}{'delay':>9}{'pts/s':>13}"
    )
    print(head)
    print("-" * len(head))
    for run_name, r in results.items():
        rate = r["points"] / r["seconds"] if r["seconds"] > 0 else float("inf")
        print(
            f"{run_name:<16}{r['mean_f1']:>8.3f}{r['pooled_f1']:>8.3f}{r['mean_f1_at_shared_best']:>10.3f}"
            f"{r['pooled_f1_at_shared_best']:>8.3f}{r['mean_best_f1_per_machine']:>13.3f}"
            f"{r['event_recall']:>10.2f}{_duration(r['median_delay_seconds']):>9}{_rate(rate):>13}"
        )
    main = next(iter(results.values()))
    for m in main["machines"]:
        print(f"  {m['machine']:<20} F1@thr {m['point']['f1']:.3f}  best {m['best_f1']:.3f}  events {m['events_detected']}/{m['events']}")


# -- a user's Prometheus -------------------------------------------------------------------------
def _run_prometheus(args: argparse.Namespace, params: dict[str, Any]) -> int:
    from aiops.collect.prometheus import PrometheusClient, PrometheusError
    from aiops.config.prometheus import PrometheusConfig

    if not args.query and args.signal:
        args.query = _catalog(args)[args.signal].query if args.signal in _catalog(args) else None
    if not args.query:
        return fail("--prometheus needs --query PROMQL or --signal NAME (and optionally --start, --end, --step)")
    end = _parse_time(args.end, datetime.now(UTC)) if args.end else datetime.now(UTC)
    start = _parse_time(args.start, end) if args.start else end - timedelta(days=1)
    if start >= end:
        return fail(f"--start ({start:%Y-%m-%d %H:%M}) must be before --end ({end:%Y-%m-%d %H:%M})")
    step = _step(args)
    name = args.detector or DEFAULT_DETECTOR
    make = _scorer(args, name, params)
    make()
    try:
        client = PrometheusClient(PrometheusConfig(url=args.prometheus))
    except ValueError as exc:
        return fail(f"--prometheus {args.prometheus!r} is not a usable URL: {exc}")
    try:
        raw = client.query_range(args.query, start, end, step)
    except PrometheusError as exc:
        hint = "check that Prometheus is reachable and retry" if exc.temporary else "fix the query"
        return fail(f"Prometheus query failed: {exc} ({hint})")
    finally:
        client.close()
    if not raw:
        return fail(f"the query returned no series between {start:%Y-%m-%d %H:%M} and {end:%Y-%m-%d %H:%M} UTC; check the metric name and the time range")
    replayed: dict[str, Replayed] = {}
    frames = _as_collected(args, {
        f"{_slug(s.labels)}.csv": pd.DataFrame({"timestamp": pd.to_datetime(s.timestamps, unit="s", utc=True), "value": s.values})
        for s in raw})
    for series in raw:
        rel = f"{_slug(series.labels)}.csv"
        frame = frames[rel]
        began = time.perf_counter()
        scores = replay_series(make(series.labels), frame, rel)
        replayed[rel] = Replayed(rel, frame.assign(anomaly_score=scores), time.perf_counter() - began)
    write_replayed(replayed, args.out)
    if not args.no_plots:
        _plot_all(replayed, args.out, args.threshold, {}, not args.quiet)
    summary = {
        "detector": name, "params": params, "signal": args.signal, "capacity": args.capacity, "query": args.query, "start": start.isoformat(), "end": end.isoformat(),
        "step_seconds": step.total_seconds(), "threshold": args.threshold, "series": _alarm_summary(replayed, args.threshold),
    }
    _write_summary(args.out, summary)
    _print_alarms(name, summary["series"], args.threshold)
    return EXIT_OK


def _parse_time(text: str, end: datetime) -> datetime:
    try:
        return end - parse_duration(text)
    except ValueError:
        pass
    try:
        stamp = pd.Timestamp(text)
    except ValueError:
        raise ReplayError(
            f"cannot read time {text!r}", hint="write it in ISO 8601 (2026-01-31T12:00Z) or as a duration before --end, like 7d"
        ) from None
    moment: datetime = (stamp if stamp.tz else stamp.tz_localize("UTC")).to_pydatetime()
    return moment


def _slug(labels: Mapping[str, str]) -> str:
    text = ",".join(f"{k}={v}" for k, v in sorted(labels.items())) or "series"
    return re.sub(r"[^A-Za-z0-9_.=,-]+", "_", text)[:150]


# -- shared output -----------------------------------------------------------------------------
def _alarm_summary(replayed: Mapping[str, Replayed], threshold: float) -> dict[str, Any]:
    out = {}
    for rel, r in replayed.items():
        scores = r.frame["anomaly_score"].to_numpy()
        onsets = alarm_onsets(scores >= threshold)
        out[rel] = {
            "points": len(scores),
            "max_score": float(scores.max()) if len(scores) else 0.0,
            "alarms": [r.frame["timestamp"].iloc[i].isoformat() for i in onsets],
        }
    return out


def _print_alarms(name: str, series: Mapping[str, Mapping[str, Any]], threshold: float) -> None:
    print(f"{name}: alarms where the score reaches {threshold:g} (one per run of flagged points)")
    for rel, info in series.items():
        first = ", ".join(info["alarms"][:3]) + (" ..." if len(info["alarms"]) > 3 else "")
        print(f"  {rel}: {info['points']} points, max score {info['max_score']:.2f}, {len(info['alarms'])} alarm(s) {first}")


def _plot_all(
    replayed: Mapping[str, Replayed], out: Path, threshold: float, windows: Mapping[str, Any], progress: bool, *, nab: bool = False
) -> None:
    for rel, r in tqdm(list(replayed.items()), desc="plots", unit="file", disable=not progress, leave=False):
        plot_series(
            r.frame, out / "plots" / Path(rel).with_suffix(".png"), title=rel, threshold=threshold,
            windows=windows.get(rel, ()), unscored_rows=probationary_length(len(r.frame)) if nab else 0,
        )


def _write_summary(out: Path, summary: Mapping[str, Any]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(_finite(summary), indent=2, default=str))


def _finite(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def _duration(seconds: float) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "-"
    sign = "-" if seconds < 0 else ""
    s = abs(seconds)
    if s < 3600:
        return f"{sign}{s / 60:.0f}m"
    if s < 86400:
        return f"{sign}{s / 3600:.1f}h"
    return f"{sign}{s / 86400:.1f}d"


def _rate(points_per_second: float) -> str:
    return "-" if not math.isfinite(points_per_second) else f"{points_per_second:,.0f}"
