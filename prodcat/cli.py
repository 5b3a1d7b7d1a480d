"""The `prodcat` command: one entry point, a subcommand per job, one line per user mistake."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated, Optional

import click
import typer
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from embedder.cli import embed, serve_similarity, similar
from models.cli import evaluate as model_evaluate
from models.cli import predict as model_predict
from models.cli import train as model_train
from prodcat.errors import ProdcatError
from retrain.cli import label_ui
from prodcat.settings import Settings

app = typer.Typer(help="prodcat: streaming product categoriser.", no_args_is_help=True,
                  pretty_exceptions_enable=False, add_completion=False)
stack_app = typer.Typer(help="Run the local stack of real services (Kafka, Elasticsearch, Redis) without Docker.",
                        no_args_is_help=True)
rules_app = typer.Typer(help="The legacy rule-based categoriser.", no_args_is_help=True)
app.add_typer(stack_app, name="stack")
app.add_typer(rules_app, name="rules")
out = Console()
err = Console(stderr=True, soft_wrap=True)

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_FEED = Path(__file__).parent / "data" / "sample_feed.jsonl"


def settings() -> Settings:
    return Settings.load()


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
def stack_status() -> None:
    """A table of the services: address, pid, health. Exit 1 if any is down."""
    from prodcat.stack import Stack

    s = settings()
    table = Table("service", "address", "pid", "healthy")
    rows = Stack(s).status()
    for row in rows:
        table.add_row(row.name, row.address, str(row.pid or "-"), "yes" if row.healthy else "[red]no[/red]")
    table.add_row("milvus", f"Milvus Lite file {s.milvus_uri}", "-", "embedded")
    out.print(table)
    raise typer.Exit(0 if all(r.healthy for r in rows) else 1)


@stack_app.command("logs")
def stack_logs(service: Annotated[str, typer.Argument(help="kafka | elasticsearch | redis")],
               lines: Annotated[int, typer.Option("-n", help="How many lines.")] = 40) -> None:
    """Print the last lines of a service's log."""
    from prodcat.stack import Stack

    out.print(Stack(settings()).service(service).process.tail(lines), markup=False, highlight=False)


# --- stream ----------------------------------------------------------------------------------
@app.command()
def topics() -> None:
    """Create prodcat's Kafka topics with the configured partitions (idempotent)."""
    from streams.topics import ensure_topics

    created = ensure_topics(settings())
    out.print(f"created: {', '.join(created)}" if created else "all topics exist")


@app.command()
def worker(loglevel: Annotated[str, typer.Option(help="Faust log level.")] = "info") -> None:
    """Run a classifier worker (Faust) until stopped; start several for more throughput."""
    from streams.worker import run_worker

    run_worker(settings(), loglevel=loglevel)


@app.command()
def feed(
    file: Annotated[Path, typer.Argument(help="Catalogue file (CSV/JSONL or a shared dataset file).")],
    preset: Annotated[str, typer.Option(help="Column mapping: auto, jsonl, csv, flipkart, flipkart-names, "
                                              "flipkart-images, myntra, myntra-images.")] = "auto",
    noise: Annotated[float, typer.Option(min=0.0, max=1.0, help="Share of records dirtied like a real feed.")] = 0.0,
    limit: Annotated[Optional[int], typer.Option(min=1, help="Send at most this many.")] = None,
    seed: Annotated[int, typer.Option(help="Noise seed.")] = 0,
) -> None:
    """Replay a catalogue into products.raw as affiliate-style events."""
    from prodcat.feed import catalogue_events, publish

    if not file.exists():
        raise ProdcatError(f"catalogue file {file} does not exist")
    with Progress(console=err, transient=True) as progress:
        task = progress.add_task(f"feeding {file.name}", total=limit)
        sent = publish(settings(), catalogue_events(file, preset, noise=noise, limit=limit, seed=seed),
                       on_sent=lambda n: progress.advance(task, n))
    out.print(f"sent {sent} events to {settings().topic_raw}")


@app.command()
def lag(group: Annotated[Optional[str], typer.Option(help="Consumer group (default: the worker's).")] = None) -> None:
    """Consumer lag per partition of products.raw, from the broker: end offset minus committed offset."""
    from streams.lag import consumer_lag

    s = settings()
    rows = consumer_lag(s, group or s.consumer_group, [s.topic_raw])
    table = Table("topic", "partition", "end offset", "committed", "lag", title=f"group {group or s.consumer_group}")
    for row in rows:
        table.add_row(row.topic, str(row.partition), str(row.end_offset),
                      "-" if row.committed is None else str(row.committed), str(row.lag))
    table.add_row("total", "", "", "", str(sum(r.lag for r in rows)))
    out.print(table)


@app.command()
def categories(top: Annotated[int, typer.Option(help="How many categories.")] = 20) -> None:
    """Category counts of the products in Elasticsearch."""
    from elasticsearch import Elasticsearch

    s = settings()
    es = Elasticsearch(**s.es_client_kwargs())
    res = es.search(index=s.es_index_products, size=0, track_total_hits=True,
                    aggs={"c": {"terms": {"field": "category_names", "size": top}}})
    table = Table("category", "products", title=f"{res['hits']['total']['value']} products in {s.es_index_products}")
    for bucket in res["aggregations"]["c"]["buckets"]:
        table.add_row(bucket["key"], str(bucket["doc_count"]))
    out.print(table)


# --- retraining -----------------------------------------------------------------------------
@app.command()
def retrain(
    watch: Annotated[bool, typer.Option("--watch", help="Keep running: retrain on enough new labels or time.")] = False,
    members: Annotated[str, typer.Option(help="Comma-separated ensemble members.")] = "logreg,mlp",
    folds: Annotated[int, typer.Option(min=2, help="Out-of-fold splits for the combiner.")] = 3,
    min_gain: Annotated[float, typer.Option(help="Gate: how much the candidate must beat the current model.")] = 0.0,
) -> None:
    """Retrain on rule + human labels; promote only if better on the human-labelled holdout."""
    from retrain.job import GatePolicy
    from retrain.service import retrain_once
    from retrain.service import watch as watch_loop

    kwargs = {"policy": GatePolicy(min_gain=min_gain), "members": tuple(members.split(",")), "folds": folds}
    if watch:
        watch_loop(settings(), **kwargs)
        return
    report = retrain_once(settings(), **kwargs)
    out.print(f"{'[green]promoted[/green]' if report.promoted else 'not promoted'} "
              f"{report.candidate_version or ''}: {report.reason}")


# --- rules -----------------------------------------------------------------------------------
@rules_app.command("generate")
def rules_generate(
    catalogue: Annotated[Path, typer.Argument(help="Catalogue whose category paths form the taxonomy.")],
    rules_out: Annotated[Path, typer.Option("--rules", help="Where to write the rules YAML.")],
    taxonomy_out: Annotated[Path, typer.Option("--taxonomy", help="Where to write the taxonomy JSON.")],
    preset: Annotated[str, typer.Option(help="Catalogue preset (see `feed`).")] = "auto",
    max_depth: Annotated[int, typer.Option(min=1, help="Truncate category paths to this depth.")] = 4,
) -> None:
    """Derive a taxonomy and a starter rule set (category name -> title words) from a catalogue."""
    from prodcat.catalogue import read_catalogue, true_category_path
    from prodcat.record import parse_record
    from prodcat.rules import generate_rules
    from prodcat.taxonomy import Taxonomy

    paths = list(filter(None, (true_category_path(parse_record(raw)) for raw in read_catalogue(catalogue, preset))))
    taxonomy = Taxonomy.from_paths(paths, max_depth=max_depth)
    taxonomy_out.write_text(taxonomy.to_json())
    ruleset = generate_rules(taxonomy)
    ruleset.save(rules_out)
    out.print(f"{len(taxonomy)} categories -> {taxonomy_out}; {len(ruleset)} rules -> {rules_out}")


# --- demo ------------------------------------------------------------------------------------
@app.command()
def demo(
    file: Annotated[Optional[Path], typer.Option(help="Catalogue to replay (default: the shipped sample).")] = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the worker.")] = 180.0,
) -> None:
    """Start the stack and a worker, replay a sample feed, print category counts from Elasticsearch."""
    from elasticsearch import Elasticsearch

    from prodcat.feed import catalogue_events, publish
    from prodcat.stack import Stack
    from streams.topics import ensure_topics

    s = settings()
    Stack(s).up(on_event=out.print)
    ensure_topics(s)
    file = file or SAMPLE_FEED
    sent = publish(s, catalogue_events(file, "auto", noise=0.3, seed=1))
    out.print(f"sent {sent} events from {file}")
    log = (s.state_dir / "run" / "demo-worker.log").open("ab")
    proc = subprocess.Popen([sys.executable, "-m", "prodcat", "worker", "--loglevel", "warning"],
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        es = Elasticsearch(**s.es_client_kwargs())
        deadline = time.monotonic() + timeout
        count = 0
        while time.monotonic() < deadline and proc.poll() is None:
            time.sleep(2)
            if es.indices.exists(index=s.es_index_products):
                es.indices.refresh(index=s.es_index_products)
                count = es.count(index=s.es_index_products)["count"]
                if count >= sent * 0.9:
                    break
        if proc.poll() is not None:
            raise ProdcatError(f"the worker exited with code {proc.returncode}; see {log.name}")
    finally:
        proc.terminate()
        proc.wait(30)
    categories(top=25)


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


def main() -> None:
    """Entry point: user mistakes print one line and exit non-zero, never a traceback."""
    try:
        app(standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except ProdcatError as exc:
        err.print(f"[red]error:[/red] {exc}", highlight=False)
        sys.exit(2)
