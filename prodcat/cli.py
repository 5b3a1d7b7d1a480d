"""The `prodcat` command: one entry point, a subcommand per job, one line per user mistake.

:func:`run` is the one place that turns errors into what the user sees: a usage mistake (bad
option value, missing argument, unknown command) or a :class:`ProdcatError` (a missing file, an
empty input, a service that is down) prints ``error: ...`` on one line and exits non-zero. Any
other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from itertools import chain
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import click
import typer
from confluent_kafka import KafkaException
from elasticsearch import NotFoundError
from rich.live import Live
from rich.markup import escape
from rich.progress import Progress
from rich.table import Table

from prodcat.catalogue_options import (
    Catalogue,
    ColumnsOpt,
    MappingOpt,
    NoHeaderOpt,
    PresetOpt,
)
from prodcat.commands.embedder import embed, serve_similarity, similar
from prodcat.commands.models import evaluate as model_evaluate
from prodcat.commands.models import predict as model_predict
from prodcat.commands.models import train as model_train
from prodcat.commands.retrain import label_ui
from prodcat.console import JsonOpt, err, out, print_json, print_json_line, table
from prodcat.errors import ConfigError, DataError, ProdcatError, StackError
from prodcat.kafka import connect_admin
from prodcat.reachable import elasticsearch_client, redis_client
from prodcat.settings import Settings
from prodcat.taxonomy import DEFAULT_MAX_DEPTH, DEFAULT_MIN_SUPPORT
from prodcat.tf_logs import quiet_tensorflow

if TYPE_CHECKING:
    from streams.lag import PartitionLag

app = typer.Typer(help="prodcat: streaming product categoriser.", no_args_is_help=True,
                  pretty_exceptions_enable=False, add_completion=False)
stack_app = typer.Typer(help="Run the local stack of real services (Kafka, Elasticsearch, Redis) without Docker.",
                        no_args_is_help=True)
rules_app = typer.Typer(help="The legacy rule-based categoriser.", no_args_is_help=True)
app.add_typer(stack_app, name="stack")
app.add_typer(rules_app, name="rules")

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_FEED = Path(__file__).parent / "data" / "sample_feed.jsonl"
# typer >= 0.29 parses with its own copy of click, whose exceptions derive from typer.TyperException;
# older typer is built on the click package. Usage errors, aborts and exits of both are handled.
USAGE_ERRORS: tuple[type[Exception], ...] = (
    click.ClickException, *((typer.TyperException,) if hasattr(typer, "TyperException") else ()))
ABORTS: tuple[type[BaseException], ...] = tuple({click.exceptions.Abort, typer.Abort})
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")


def settings() -> Settings:
    return Settings.load()


@app.callback()
def _options(verbose: Annotated[bool, typer.Option(
        "--verbose", "-v", help="Show TensorFlow's start-up logs (hidden by default).")] = False) -> None:
    """prodcat: streaming product categoriser."""
    if not verbose:
        quiet_tensorflow()  # before any command imports TensorFlow


# --- stack -----------------------------------------------------------------------------------
ServicesOpt = Annotated[Optional[list[str]], typer.Option("--service", "-s", help="Only this service (repeatable).")]


@stack_app.command("up")
def stack_up(service: ServicesOpt = None) -> None:
    """Start the services that are not running and wait until all are healthy (idempotent)."""
    from prodcat.stack import Stack

    t0 = time.monotonic()
    Stack(settings(), only=service).up(on_event=out.print)
    out.print(f"[green]stack healthy[/green] in {time.monotonic() - t0:.1f}s")


@stack_app.command("down")
def stack_down(service: ServicesOpt = None) -> None:
    """Stop the services by their pids; leaves data on disk."""
    from prodcat.stack import Stack

    Stack(settings(), only=service).down(on_event=out.print)


@stack_app.command("status")
def stack_status(as_json: JsonOpt = False) -> None:
    """A table of the services: address, pid, health. Exit 1 if any is down."""
    from prodcat.stack import Stack

    s = settings()
    rows = [{"service": r.name, "address": r.address, "pid": r.pid, "healthy": r.healthy} for r in Stack(s).status()]
    milvus = {"service": "milvus", "address": f"Milvus Lite file {s.milvus_uri}", "pid": None, "healthy": None}
    if as_json:
        print_json({"services": [*rows, {**milvus, "embedded": True}]})
    else:
        shown = table("service", "address", "pid", "healthy")
        for row in rows:
            shown.add_row(row["service"], row["address"], str(row["pid"] or "-"),
                          "yes" if row["healthy"] else "[red]no[/red]")
        shown.add_row(milvus["service"], milvus["address"], "-", "embedded")
        out.print(shown)
    raise typer.Exit(0 if all(r["healthy"] for r in rows) else 1)


@stack_app.command("logs")
def stack_logs(service: Annotated[str, typer.Argument(help="kafka | elasticsearch | redis")],
               lines: Annotated[int, typer.Option("-n", min=1, help="How many lines.")] = 40) -> None:
    """Print the last lines of a service's log."""
    from prodcat.stack import Stack

    out.print(Stack(settings()).service(service).process.tail(lines), markup=False, highlight=False)


# --- stream ----------------------------------------------------------------------------------
@app.command()
def topics() -> None:
    """Create prodcat's Kafka topics with the configured partitions (idempotent)."""
    from streams.topics import ensure_topics

    s = settings()
    connect_admin(s)  # Kafka down: one line in seconds, naming PRODCAT_KAFKA_BROKERS
    created = ensure_topics(s)
    out.print(f"created: {', '.join(created)}" if created else "all topics exist")


@app.command()
def worker(loglevel: Annotated[str, typer.Option(help="Faust log level: " + ", ".join(LOG_LEVELS) + ".")] = "info",
           ) -> None:
    """Run a classifier worker (Faust) until stopped; start several for more throughput."""
    if loglevel.lower() not in LOG_LEVELS:
        raise ConfigError(f"--loglevel: expected one of {', '.join(LOG_LEVELS)}, received {loglevel!r}")
    s = settings()
    # the services the worker cannot start without, checked first so a down one is one line
    connect_admin(s)
    elasticsearch_client(s).close()
    if s.skip_unchanged or s.embed_images:
        redis_client(s).close()
    from retrain.intake import LabelIntake
    from streams.worker import (
        run_worker,  # Faust, and TensorFlow when images are on: after the checks
    )

    # human labels reach the label store through the worker; the CLI wires retrain's intake in
    run_worker(s, loglevel=loglevel.lower(), label_intake=LabelIntake.for_worker(s))


@app.command()
def feed(
    file: Annotated[Path, typer.Argument(help="Catalogue file (CSV/JSONL or a shared dataset file).")],
    preset: PresetOpt = "auto",
    columns: ColumnsOpt = None,
    mapping: MappingOpt = None,
    no_header: NoHeaderOpt = False,
    noise: Annotated[float, typer.Option(min=0.0, max=1.0, help="Share of records dirtied like a real feed.")] = 0.0,
    limit: Annotated[Optional[int], typer.Option(min=1, help="Send at most this many.")] = None,
    seed: Annotated[int, typer.Option(help="Noise seed.")] = 0,
) -> None:
    """Replay a catalogue into products.raw as affiliate-style events."""
    from prodcat.feed import catalogue_events, publish

    if not file.exists():
        raise ProdcatError(f"catalogue file {file} does not exist")
    catalogue = Catalogue.from_options(file, preset, columns, mapping, no_header=no_header)
    s = settings()
    events = iter(catalogue_events(file, preset, noise=noise, limit=limit, seed=seed, mapping=catalogue.mapping))
    first = next(events, None)  # reads the preset and the first line before Kafka is reached
    if first is None:
        raise DataError(f"no product in {file} ({catalogue.describe()}); nothing to send")
    with Progress(console=err, transient=True) as progress:
        task = progress.add_task(f"feeding {file.name}", total=limit)
        sent = publish(s, chain([first], events), on_sent=lambda n: progress.advance(task, n))
    out.print(f"sent {sent} events to {s.topic_raw}")


def _lag_rows(s: Settings, group: str) -> list[PartitionLag]:
    from streams.lag import consumer_lag

    try:
        return consumer_lag(s, group, [s.topic_raw])
    except KafkaException as exc:  # e.g. NOT_COORDINATOR while a freshly started broker loads its groups
        raise StackError(f"Kafka at {s.kafka_brokers} did not answer the lag query ({exc.args[0].str()}); "
                         "try again in a few seconds") from None


def _lag_json(group: str, rows: list[PartitionLag]) -> dict:
    return {"group": group, "total_lag": sum(r.lag for r in rows), "partitions": [
        {"topic": r.topic, "partition": r.partition, "end_offset": r.end_offset, "committed": r.committed,
         "lag": r.lag} for r in rows]}


def _lag_table(group: str, rows: list[PartitionLag], caption: str | None = None) -> Table:
    shown = table("topic", "partition", "end offset", "committed", "lag", title=f"group {group}")
    shown.caption = caption
    for row in rows:
        shown.add_row(row.topic, str(row.partition), str(row.end_offset),
                      "-" if row.committed is None else str(row.committed), str(row.lag))
    shown.add_row("total", "", "", "", str(sum(r.lag for r in rows)))
    return shown


@app.command()
def lag(group: Annotated[Optional[str], typer.Option(help="Consumer group (default: the worker's).")] = None,
        watch: Annotated[bool, typer.Option("--watch", help="Refresh in place until Ctrl-C (with --json: one "
                                                            "JSON line per refresh).")] = False,
        interval: Annotated[float, typer.Option(min=0.2, help="Seconds between refreshes with --watch.")] = 2.0,
        as_json: JsonOpt = False) -> None:
    """Consumer lag per partition of products.raw, from the broker: end offset minus committed offset."""
    s = settings()
    group = group or s.consumer_group
    rows = _lag_rows(s, group)  # a stopped Kafka fails here, before any live display
    if not watch:
        if as_json:
            print_json(_lag_json(group, rows))
        else:
            out.print(_lag_table(group, rows))
        return
    try:
        if as_json:
            while True:
                print_json_line({"time": time.time(), **_lag_json(group, rows)})
                sys.stdout.flush()
                time.sleep(interval)
                rows = _lag_rows(s, group)
        # one table redrawn in place (a pipe gets each refresh appended: rich does not redraw there)
        with Live(_lag_table(group, rows), console=out, auto_refresh=False) as live:
            while True:
                time.sleep(interval)
                rows = _lag_rows(s, group)
                live.update(_lag_table(group, rows, caption=f"every {interval:g}s, {time.strftime('%H:%M:%S')}; "
                                                            "Ctrl-C to stop"), refresh=True)
    except KeyboardInterrupt:  # the way out of --watch: not an error
        return


@app.command()
def categories(top: Annotated[int, typer.Option(min=1, help="How many categories.")] = 20,
               as_json: JsonOpt = False) -> None:
    """Category counts of the products in Elasticsearch."""
    s = settings()
    es = elasticsearch_client(s)
    try:
        res = es.search(index=s.es_index_products, size=0, track_total_hits=True,
                        aggs={"c": {"terms": {"field": "category_names", "size": top}}})
    except NotFoundError:
        raise DataError(f"Elasticsearch at {s.es_url} has no index {s.es_index_products!r} "
                        "(PRODCAT_ES_INDEX_PRODUCTS); run a worker and feed products first") from None
    finally:
        es.close()
    total = res["hits"]["total"]["value"]
    buckets = res["aggregations"]["c"]["buckets"]
    if as_json:
        print_json({"index": s.es_index_products, "products": total,
                    "categories": [{"category": b["key"], "products": b["doc_count"]} for b in buckets]})
        return
    shown = table("category", "products", title=f"{total} products in {s.es_index_products}")
    for bucket in buckets:
        shown.add_row(bucket["key"], str(bucket["doc_count"]))
    out.print(shown)


# --- retraining -----------------------------------------------------------------------------
@app.command()
def retrain(
    watch: Annotated[bool, typer.Option("--watch", help="Keep running: retrain on enough new labels or time.")] = False,
    members: Annotated[str, typer.Option(help="Comma-separated ensemble members.")] = "logreg,mlp",
    folds: Annotated[int, typer.Option(min=2, help="Out-of-fold splits for the combiner.")] = 3,
    min_gain: Annotated[float, typer.Option(help="Gate: how much the candidate must beat the current model.")] = 0.0,
) -> None:
    """Retrain on rule + human labels; promote only if better on the human-labelled holdout."""
    s = settings()
    connect_admin(s)  # the promoted model's announcement
    elasticsearch_client(s).close()  # labels and products
    redis_client(s).close()  # the retrain lock
    # TensorFlow/Keras (the members) only once the services answered: a stopped stack fails in seconds
    from models.members import MEMBERS
    from retrain.job import GatePolicy
    from retrain.service import retrain_once
    from retrain.service import watch as watch_loop

    names = tuple(m.strip() for m in members.split(",") if m.strip())
    if not names or any(m not in MEMBERS for m in names):
        raise ConfigError(f"--members: expected some of {', '.join(sorted(MEMBERS))}, received {members!r}")
    kwargs = {"policy": GatePolicy(min_gain=min_gain), "members": names, "folds": folds}
    if watch:
        watch_loop(s, **kwargs)
        return
    report = retrain_once(s, **kwargs)
    out.print(f"{'[green]promoted[/green]' if report.promoted else 'not promoted'} "
              f"{report.candidate_version or ''}: {report.reason}")


# --- rules -----------------------------------------------------------------------------------
def _write(path: Path, text: str, what: str) -> None:
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise DataError(f"cannot write the {what} to {path} ({exc.strerror}); pass a writable path") from None


@rules_app.command("generate")
def rules_generate(
    catalogue: Annotated[Path, typer.Argument(help="Catalogue whose category paths form the taxonomy.")],
    rules_out: Annotated[Path, typer.Option("--rules", help="Where to write the rules YAML.")],
    taxonomy_out: Annotated[Path, typer.Option("--taxonomy", help="Where to write the taxonomy JSON.")],
    preset: PresetOpt = "auto",
    columns: ColumnsOpt = None,
    mapping: MappingOpt = None,
    no_header: NoHeaderOpt = False,
    max_depth: Annotated[int, typer.Option(min=1, help="Truncate category paths to this depth.")] = DEFAULT_MAX_DEPTH,
    min_support: Annotated[int, typer.Option(min=1, help="Drop categories with fewer products.")] = DEFAULT_MIN_SUPPORT,
) -> None:
    """Derive a taxonomy and a starter rule set (category name -> title words) from a catalogue."""
    from prodcat.catalogue import true_category_path
    from prodcat.errors import InvalidRecord
    from prodcat.record import parse_record
    from prodcat.rules import generate_rules
    from prodcat.taxonomy import Taxonomy

    source = Catalogue.from_options(catalogue, preset, columns, mapping, no_header=no_header)
    paths = []
    for raw in source.read():
        try:
            path = true_category_path(parse_record(raw))
        except InvalidRecord:
            continue  # the stream would dead-letter it; it names no category either way
        if path:
            paths.append(path)
    if not paths:
        raise DataError(f"no product with a category path in {catalogue} ({source.describe()}); "
                        "expected a catalogue whose category field holds paths like 'Shoes > Sneakers'")
    # the same tree and rules `train` derives with the same options, so `train --rules` reads these back
    taxonomy, support = Taxonomy.from_catalogue(paths, max_depth=max_depth, min_support=min_support)
    if len(taxonomy) == 0:
        raise DataError(f"no category of {catalogue} has {min_support} products; lower --min-support")
    ruleset = generate_rules(taxonomy, support=support)
    _write(taxonomy_out, taxonomy.to_json(), "taxonomy")
    try:
        ruleset.save(rules_out)
    except OSError as exc:
        raise DataError(f"cannot write the rules to {rules_out} ({exc.strerror}); pass a writable path") from None
    out.print(f"{len(taxonomy)} categories -> {taxonomy_out}; {len(ruleset)} rules -> {rules_out}")


# --- demo ------------------------------------------------------------------------------------
def _default_photos() -> Optional[Path]:
    from prodcat.demo import DEFAULT_PHOTOS

    return DEFAULT_PHOTOS if DEFAULT_PHOTOS.is_file() else None


@app.command()
def demo(
    file: Annotated[Optional[Path], typer.Option(help="Catalogue to replay (default: the shipped sample).")] = None,
    photos: Annotated[Optional[Path], typer.Option(
        envvar="PRODCAT_DEMO_PHOTOS", show_envvar=False,
        help="A Flipkart-style images.csv with images/ beside it: trained on, and some replayed with their photos "
             "(default: ../shared/datasets/flipkart/images.csv when it is there; PRODCAT_DEMO_PHOTOS).")] = None,
    no_photos: Annotated[bool, typer.Option("--no-photos", help="Text only: no photo catalogue, no image "
                                                                 "embedding.")] = False,
    timeout: Annotated[float, typer.Option(min=1.0, help="Seconds to wait for the worker.")] = 240.0,
    stop: Annotated[bool, typer.Option("--stop", help="Stop the worker and pages a demo left running "
                                                      "(`make stop` also stops the stack).")] = False,
) -> None:
    """Train a small model, announce it, replay a sample feed through a worker, show what it decided."""
    from prodcat.demo import DemoOptions, render, run_demo, stop_demo

    s = settings()
    if stop:
        stop_demo(s, say=out.print)
        return
    options = DemoOptions(feed=file or SAMPLE_FEED, photos=None if no_photos else (photos or _default_photos()),
                          timeout_s=timeout)
    render(run_demo(s, options, say=lambda line: out.print(line, highlight=False)), out)


# image similarity commands live with the embedder
app.command()(embed)
app.command()(similar)
app.command("similar-ui")(serve_similarity)
# training, evaluating and trying models live with the models
app.command("train")(model_train)
app.command("evaluate")(model_evaluate)
app.command("predict")(model_predict)
# the labelling page lives with retraining
app.command("label-ui")(label_ui)


def _usage_message(exc: Exception) -> str:
    """A click usage error on one line: the problem, then where the command's help is."""
    message = " ".join(exc.format_message().split())  # type: ignore[attr-defined]  # both clicks' ClickException
    ctx = getattr(exc, "ctx", None)
    return f"{message} (see '{ctx.command_path} --help')" if ctx is not None else message


def run(args: Sequence[str] | None = None) -> int:
    """Run the CLI on ``args`` (default: the command line); the exit code. The one place errors become lines."""
    try:
        code = app(args=list(sys.argv[1:] if args is None else args), prog_name="prodcat", standalone_mode=False)
    except USAGE_ERRORS as exc:
        # `prodcat stack` alone: typer has printed the help already (the class is not public; typer checks the name too)
        if type(exc).__name__ != "NoArgsIsHelpError":
            err.print(f"[red]error:[/red] {escape(_usage_message(exc))}", highlight=False)
        return int(getattr(exc, "exit_code", 2))
    except ABORTS:
        err.print("aborted", highlight=False)
        return 130
    except ProdcatError as exc:
        err.print(f"[red]error:[/red] {escape(' '.join(str(exc).split()))}", highlight=False)
        return 2
    return code if isinstance(code, int) else 0  # non-standalone click returns the code of a typer.Exit


def main() -> None:
    """Entry point: user mistakes print one line and exit non-zero, never a traceback."""
    sys.exit(run())
