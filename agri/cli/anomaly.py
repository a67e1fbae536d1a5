"""`agri anomaly ...`: score CSV series with the streaming detector; run the NAB check."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from agri import nab as nabrun
from agri.anomaly_io import SeriesData, SeriesFileError, read_series_csv, score_together, write_scores_csv
from agri.cli.common import console, err_console, fail
from analytics.anomaly import AnomalyState, score_series, update
from analytics.anomaly.farm import ALERT_LEVEL, alerts
from analytics.anomaly.synthetic import alarm_precision_recall, farm_masks, generate

anomaly_app = typer.Typer(help="Streaming anomaly detection on CSV series", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(anomaly_app, name="anomaly")


#: a folder's files are scored together in groups of at most this many files and points (the
#: detector is vectorised over series; a group's rows are held as text for the output, some
#: 200 bytes per row)
GROUP_FILES = 256
GROUP_POINTS = 2_000_000


def _read(src: Path, strict: bool) -> SeriesData:
    data = read_series_csv(src, strict=strict)
    note = data.warning()
    if note is not None:
        err_console.print(f"[yellow]warning:[/] {note}", highlight=False, soft_wrap=True)
    return data


def _score_file(src: Path, dst: Path, strict: bool = False) -> int:
    data = _read(src, strict)
    scores = score_series(data.times, data.values)
    dst.parent.mkdir(parents=True, exist_ok=True)
    write_scores_csv(dst, data.stamps, data.raw_values, scores)
    return len(scores)


def _progress() -> Progress:
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )


@anomaly_app.command("score")
def score(
    input: Annotated[Path, typer.Argument(help="CSV file 'timestamp,value', or a folder of them")],
    out: Annotated[Path, typer.Option("--out", "-o", help="output CSV file, or folder for a folder input")],
    strict: Annotated[
        bool, typer.Option("--strict", help="refuse a file whose timestamps step back (default: warn, score)")
    ] = False,
) -> None:
    """Score INPUT and write 'timestamp,value,anomaly_score' to OUTPUT (folders are mirrored)."""
    if not input.exists():
        fail(f"{input}: no such file or folder")
    if input.is_file():
        if out.is_dir():
            fail(f"{out}: is a folder; give an output file for a single input file")
        try:
            data = _read(input, strict)
        except SeriesFileError as exc:
            fail(str(exc))
        # one series runs some 4,000 points/s (the detector is vectorised over series): a long
        # file shows its progress, chunk by chunk
        with _progress() as bar:
            task = bar.add_task(f"scoring {input.name}", total=len(data.values))
            scores = score_together([data], progress=lambda done: bar.update(task, completed=done))[0]
        out.parent.mkdir(parents=True, exist_ok=True)
        write_scores_csv(out, data.stamps, data.raw_values, scores)
        console.print(f"scored {len(scores)} points -> {out}")
        return
    files = sorted(p for p in input.rglob("*.csv") if p.is_file())
    if not files:
        fail(f"{input}: no .csv files in this folder")
    if out.exists() and not out.is_dir():
        fail(f"{out}: exists and is not a folder")
    total = 0
    with _progress() as bar:
        task = bar.add_task("scoring", total=len(files))
        group: list[tuple[Path, SeriesData]] = []
        rows = 0  # in the group

        def flush() -> None:
            """Score the files read so far together and write them."""
            nonlocal total, rows
            if not group:
                return
            bar.update(task, description=f"scoring {len(group)} files, {rows:,} points")
            for (rel, data), scores in zip(group, score_together([d for _, d in group]), strict=True):
                dst = out / rel
                dst.parent.mkdir(parents=True, exist_ok=True)
                write_scores_csv(dst, data.stamps, data.raw_values, scores)
                total += len(scores)
                bar.advance(task)
            group.clear()
            rows = 0

        for src in files:
            rel = src.relative_to(input)
            bar.update(task, description=f"reading {rel}")
            try:
                data = _read(src, strict)
            except SeriesFileError as exc:
                flush()  # the files before it are scored and written, as when scored one by one
                bar.stop()
                fail(str(exc))
            group.append((rel, data))
            rows += len(data.values)
            if len(group) >= GROUP_FILES or rows >= GROUP_POINTS:
                flush()
        flush()
    console.print(f"scored {total} points in {len(files)} files -> {out}")


@anomaly_app.command("nab")
def nab(
    nab_dir: Annotated[
        Path, typer.Option("--nab", help="NAB folder: data/<category>/<file>.csv, combined_windows.json")
    ],
    scorer_path: Annotated[Path, typer.Option("--scorer", help="the NAB scorer, nabscore.py")],
    results: Annotated[Path | None, typer.Option(help="also write per-file result CSVs here")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
    leave_one_out: Annotated[
        bool, typer.Option(help="also score each category at a threshold tuned on the other categories")
    ] = False,
    cv: Annotated[
        bool,
        typer.Option(
            "--cv", help="leave one category out: tune constants and thresholds on three, score the fourth"
        ),
    ] = False,
    robust: Annotated[
        bool,
        typer.Option("--robustness", help="standard score, 8 edge placements and ±20 % on each constant"),
    ] = False,
    constant: Annotated[
        list[str] | None,
        typer.Option("--constant", help="with --robustness: sweep only this constant (repeatable)"),
    ] = None,
) -> None:
    """Score a NAB corpus end to end with the default configuration; print the three profiles."""

    if constant and not robust:
        fail("--constant only applies with --robustness")
    data_dir, labels = nab_dir / "data", nab_dir / "combined_windows.json"
    for p in (data_dir, labels, scorer_path):
        if not p.exists():
            fail(f"{p}: not found (check --nab and --scorer)")
    try:
        series = nabrun.load_corpus(data_dir)
    except (SeriesFileError, FileNotFoundError) as exc:
        fail(str(exc))
    scores = nabrun.score_corpus(series)
    scorer = nabrun.load_scorer(scorer_path)
    res = nabrun.evaluate(scorer, labels, data_dir, scores)
    report: dict[str, object] = {
        "files": len(series),
        "points": int(sum(len(s.values) for s in series)),
        "profiles": {p: round(float(r["score"]), 2) for p, r in res.items()},
        "thresholds": {p: r["threshold"] for p, r in res.items()},
    }

    def note(msg: str) -> None:
        if not json_out:
            err_console.print(f"  {msg}", highlight=False)

    if leave_one_out:
        report["leave_one_category_out"] = nabrun.leave_one_category_out(scorer, labels, data_dir, scores)
    if cv:
        report["cv"] = nabrun.cross_validate(scorer, labels, data_dir, series, progress=note)
    if robust:
        try:
            report["robustness"] = nabrun.robustness(
                scorer, labels, data_dir, series, progress=note, only=constant or None
            )
        except ValueError as exc:
            fail(str(exc))
    if results is not None:
        nabrun.write_results(results, series, scores)
    if json_out:
        console.print_json(json.dumps(report))
        return
    console.print(f"NAB subset: {report['files']} files, {report['points']} points")
    for p, v in report["profiles"].items():  # type: ignore[attr-defined]
        console.print(f"  {p:<20} {v:6.2f}")
    if leave_one_out:
        console.print("  leave one category out (threshold chosen on the other categories):")
        for p, v in report["leave_one_category_out"].items():  # type: ignore[attr-defined]
            console.print(f"    {p:<18} {v:6.2f}")
    if cv:
        out: dict = report["cv"]  # type: ignore[assignment,type-arg]
        console.print("  one category held out (constants and thresholds from the other three):")
        for cat, r in out["categories"].items():
            score = "n/a (no windows)" if r["standard"] is None else f"{r['standard']:6.2f}"
            raw = f"{r['standard_raw']:8.3f}"
            console.print(f"    {cat:<24} standard {score}  raw {raw}  chosen {r['chosen']}")
        console.print(f"    mean of the normalised categories: {out['mean_standard']}")
        console.print(f"    pooled: {out['pooled']}")
    if robust:
        rob: dict = report["robustness"]  # type: ignore[assignment,type-arg]
        console.print(
            f"  edge placements: {rob['edge_placements']} "
            f"(spread {rob['edge_spread']}, mean {rob['edge_mean']})"
        )
        for name, (lo, hi) in rob["constants"].items():
            console.print(f"    {name:<22} -20 %: {lo:6.2f}  +20 %: {hi:6.2f}")
        console.print(f"  all: {rob['min']} .. {rob['max']} (spread {rob['constant_spread']})")
        win = rob["windows"]
        console.print(
            f"  windows detected: default {win['default']} of {win['scored']}, "
            f"{win['min']} .. {win['max']} over all runs (one window moves the score by 1-2 points)"
        )
        for label, r in rob["runs"].items():
            if r["gained"] or r["lost"]:
                moved = [f"+{w}" for w in r["gained"]] + [f"-{w}" for w in r["lost"]]
                console.print(f"    {label:<28} {r['score']:6.2f}  {' '.join(moved)}", highlight=False)
        off = rob["start_offsets"]
        console.print(
            f"  the default with every file started 1..{len(off['scores']) - 1} points later: "
            f"{off['scores']} (spread {off['spread']}: the score's own noise, not part of the band)"
        )


@anomaly_app.command("synthetic")
def synthetic(
    seed: Annotated[int, typer.Option(help="generator seed (development used 0-10)")] = 1,
    farms: Annotated[int, typer.Option(min=1, help="farms, each with one series of every kind")] = 10,
    days: Annotated[float, typer.Option(min=4.0, help="days of 5-minute data")] = 14.0,
    threshold: Annotated[
        list[float] | None, typer.Option(help=f"alert level(s) on the score (default {ALERT_LEVEL})")
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Event precision/recall of farm alerts (QC flags, physical context, the score at an alert
    level) on seeded synthetic farm series with injected faults."""

    data = generate(seed=seed, farms=farms, days=days)
    scores = update(AnomalyState.new(data.values.shape[0]), data.times, data.values)
    qc, explained = farm_masks(data)
    rows = []
    for thr in threshold or [ALERT_LEVEL]:
        r = alarm_precision_recall(data, alerts(scores, thr, qc, explained))
        rows.append(
            {
                "threshold": thr,
                "precision": round(r.precision, 3),
                "recall": round(r.recall, 3),
                "true_alarms": r.true_alarms,
                "false_alarms": r.false_alarms,
                "faults_found": {k: f"{a}/{b}" for k, (a, b) in r.by_kind.items()},
            }
        )
    if json_out:
        console.print_json(json.dumps({"seed": seed, "series": int(data.values.shape[0]), "results": rows}))
        return
    console.print(f"{data.values.shape[0]} series x {data.values.shape[1]} points, {len(data.faults)} faults")
    for row in rows:
        kinds = ", ".join(f"{k} {v}" for k, v in row["faults_found"].items())  # type: ignore[attr-defined]
        console.print(
            f"  alert level {row['threshold']}: precision {row['precision']}, recall {row['recall']} "
            f"({row['true_alarms']} true / {row['false_alarms']} false alarms; {kinds})"
        )
