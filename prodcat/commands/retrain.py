"""Command functions for labelling, registered on the ``prodcat`` app in prodcat/cli.py:

    app.command("label-ui")(label_ui)

Plain functions with Typer ``Annotated`` parameters; every user mistake or unreachable service
is raised as a ``ProdcatError`` (one line, non-zero exit through ``prodcat.cli.main``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from prodcat.errors import DataError, ProdcatError
from prodcat.settings import Settings
from prodcat.taxonomy import Taxonomy

__all__ = ["label_ui", "load_taxonomy"]

out = Console()
DEMO_TAXONOMY = Path(__file__).resolve().parents[1] / "data" / "demo_taxonomy.json"  # prodcat/data


def load_taxonomy(settings: Settings, path: Path | None = None) -> tuple[Taxonomy, str]:
    """The taxonomy labels refer to, and where it came from.

    ``path`` if given; else the promoted model's (a ``models.updates`` announcement of rules);
    else PRODCAT_TAXONOMY_PATH; else the demo taxonomy the worker also falls back to.
    """
    if path is None:
        from runtime.model_updates import AnnouncementReader

        reader = AnnouncementReader(settings)
        try:
            promoted = reader.latest(timeout=5.0)
        finally:
            reader.close()
        if promoted is not None and promoted.kind == "rules":
            path = Path(promoted.location) / "taxonomy.json"
    path = path or settings.taxonomy_path or DEMO_TAXONOMY
    try:
        return Taxonomy.from_json(Path(path).read_text(encoding="utf-8")), str(path)
    except OSError as exc:
        raise DataError(f"cannot read the taxonomy {path} ({exc.strerror}); pass --taxonomy or set "
                        "PRODCAT_TAXONOMY_PATH") from None


def label_ui(
    host: Annotated[str, typer.Option(help="Address to listen on; anything but loopback needs --token.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8089,
    labeller_token: Annotated[Optional[str], typer.Option(
        "--token", help="Shared secret labellers need (open /?token=... once); required off loopback. "
                   "Default: PRODCAT_LABELLING_TOKEN.")] = None,
    taxonomy: Annotated[Optional[Path], typer.Option(
        help="Taxonomy JSON (default: the promoted model's, PRODCAT_TAXONOMY_PATH, or the demo one).")] = None,
) -> None:
    """Serve the labelling page: uncertain products from labelling.requests, labels to labelling.labels."""
    from aiohttp import web
    from elasticsearch import AsyncElasticsearch

    from embedder.fetch import ImageFetcher
    from prodcat.kafka import connect_admin
    from retrain.label_store import LabelStore
    from retrain.labelling_tool import check_bind, labelling_app

    settings = Settings.load()
    if labeller_token is None and settings.labelling_token is not None:
        labeller_token = settings.labelling_token.get_secret_value()
    check_bind(host, labeller_token)  # before anything is reached: a refused start costs nothing
    connect_admin(settings)
    tree, source = load_taxonomy(settings, taxonomy)
    es = AsyncElasticsearch(**settings.es_client_kwargs())
    store = LabelStore(es, index=settings.es_index_labels, products_index=settings.es_index_products)
    fetcher = ImageFetcher(allow_private=settings.image_allow_private,
                           allow_local_files=settings.image_allow_local_files)
    app = labelling_app(settings, tree, token=labeller_token, host=host, fetcher=fetcher, store=store)

    async def close_es(_app: web.Application) -> None:
        await es.close()

    app.on_cleanup.append(close_es)
    shown = "[::1]" if host == "::1" else host
    out.print(f"{len(tree)} categories from {source}; requests from {settings.topic_label_requests}, "
              f"labels to {settings.topic_labels}; label at http://{shown}:{port}/"
              + ("?token=<token>" if labeller_token else ""))
    try:
        web.run_app(app, host=host, port=port, print=None)
    except OSError as exc:
        raise ProdcatError(f"cannot listen on {host}:{port} ({exc.strerror}); pass --port") from None
