"""Write a labelled univariate corpus in NAB's layout from SMD-layout machines (issue 14).

    python bench/univariate_from_smd.py DATA/smd DATA/asd --step asd=300 --out /tmp/smd-uni
    python3 -m aiops backtest /tmp/smd-uni --labels /tmp/smd-uni/combined_windows.json --cv

Each metric that an ``interpretation_label`` segment names becomes one file (train rows, then test
rows), one category folder per machine, with NAB's windows (see
``aiops/evaluation/smd_univariate.py``). ``--cv`` then leaves one machine out. ``--step NAME=SECONDS``
sets a dataset's row spacing (default 60 s; ASD is one row per 5 minutes).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aiops.evaluation.smd_univariate import convert  # noqa: E402


def _steps(values: list[str]) -> dict[str, int]:
    out = {}
    for value in values:
        name, sep, seconds = value.partition("=")
        if not sep or not seconds.isdigit() or int(seconds) <= 0:
            raise SystemExit(f"--step takes NAME=SECONDS (e.g. asd=300), got {value!r}")
        out[name] = int(seconds)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sources", nargs="+", type=Path, help="SMD-layout dataset folders (train/, test/, test_label/, interpretation_label/)")
    parser.add_argument("--out", type=Path, required=True, help="folder to write the NAB-layout corpus into")
    parser.add_argument("--step", action="append", default=[], help="NAME=SECONDS row spacing of the dataset folder NAME (default 60)")
    args = parser.parse_args(argv)
    steps = _steps(args.step)
    unknown = set(steps) - {p.resolve().name for p in args.sources}
    if unknown:
        raise SystemExit(f"--step names {', '.join(sorted(unknown))}, which is not among the source folders")
    result = convert([(p, steps.get(p.resolve().name, 60)) for p in args.sources], args.out)
    print(f"{args.out}: {result.files} files, {result.windows} windows from {result.segments} segments, {result.points:,} points")
    for name, why in result.skipped.items():
        print(f"skipped {name}: {why}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
