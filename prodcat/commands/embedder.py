"""Command functions for image similarity, registered on the ``prodcat`` app in prodcat/cli.py:

    app.command()(embed); app.command()(similar); app.command("similar-ui")(serve_similarity)

Plain functions with Typer ``Annotated`` parameters; every user mistake or unreachable service
is raised as a ``ProdcatError`` (one line, non-zero exit through ``prodcat.cli.main``).
Heavy imports (TensorFlow, pymilvus) stay inside the functions so ``prodcat --help`` is quick.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from prodcat.catalogue_options import Catalogue, ColumnsOpt, MappingOpt, NoHeaderOpt, PresetOpt
from prodcat.console import JsonOpt, err, out, print_json, table
from prodcat.errors import ConfigError, DataError, ProdcatError
from prodcat.settings import Settings
from prodcat.taxonomy import Taxonomy

if TYPE_CHECKING:
    from embedder.base import Embedder
    from embedder.index import ImageIndex, ImageVector

__all__ = ["embed", "serve_similarity", "similar"]


@contextmanager
def _milvus_errors(uri: str) -> Iterator[None]:
    """pymilvus' own exceptions (server gone mid-run, timeouts) as one-line prodcat errors."""
    from pymilvus.exceptions import MilvusException

    try:
        yield
    except MilvusException as exc:
        raise ProdcatError(f"Milvus at {uri!r} failed: {exc.message} (check the server, or PRODCAT_MILVUS_URI)") \
            from None


def _open_index(settings: Settings) -> ImageIndex:
    from embedder.index import ImageIndex

    token = settings.milvus_token.get_secret_value() if settings.milvus_token else None
    # Milvus Lite logs a failed start (e.g. the file locked by another process) with a full traceback;
    # the ConfigError below says it in one line
    lite_log = logging.getLogger("milvus_lite")
    previous_level = lite_log.level
    lite_log.setLevel(logging.CRITICAL)
    try:
        with _milvus_errors(settings.milvus_uri):
            return ImageIndex(settings.milvus_uri, token=token)
    except OSError as exc:  # a Milvus Lite file in a folder that cannot be created
        raise ConfigError(f"cannot open the Milvus Lite file {settings.milvus_uri!r} ({exc.strerror}); "
                          "set PRODCAT_MILVUS_URI to a writable path or a server URI") from None
    except ConfigError as exc:
        if "://" in settings.milvus_uri:
            raise
        raise ConfigError(f"{exc}; a Milvus Lite file serves one process at a time: is a worker or "
                          "`prodcat similar-ui` using it? Stop it, or set PRODCAT_MILVUS_URI to a Milvus server") \
            from None
    finally:
        lite_log.setLevel(previous_level)


def load_embedder(image_size: int, batch_size: int) -> Embedder:
    """The default embedder (EfficientNet-Lite0, ImageNet); weights converted once into state_dir."""
    from embedder.backends.efficientnet_lite import EfficientNetLite0Embedder

    return EfficientNetLite0Embedder(cache_dir=Settings.load().state_dir / "cache" / "weights",
                                     image_size=image_size, batch_size=batch_size)


def _taxonomy(path: Path | None) -> Taxonomy | None:
    """The taxonomy whose ids label the vectors, or None: ids of the catalogue's own paths (path_id)."""
    if path is None:
        return None
    try:
        return Taxonomy.from_json(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise DataError(f"cannot read the taxonomy {path} ({exc.strerror}); pass --taxonomy or set "
                        "PRODCAT_TAXONOMY_PATH") from None


def _records(catalogue: Catalogue, limit: int | None) -> list[dict]:
    if not catalogue.path.is_file():
        raise ProdcatError(f"catalogue file {catalogue.path} does not exist")
    return list(islice(catalogue.read(), limit))  # read_catalogue checks the preset and the mapping


def embed(
    catalogue: Annotated[Path, typer.Argument(help="Catalogue with image URLs, e.g. ../shared/datasets/myntra/images.csv.")],
    preset: PresetOpt = "auto",
    columns: ColumnsOpt = None,
    mapping: MappingOpt = None,
    no_header: NoHeaderOpt = False,
    images_dir: Annotated[Optional[Path], typer.Option(
        "--images-dir", help="Folder of the photos: an image column holding a file name is looked up there, and a "
                             "product without one gets <id>.jpg/.png/... from it (default: as the catalogue says; "
                             "the photo presets: images/ beside the file).")] = None,
    export: Annotated[Optional[Path], typer.Option(
        "--export", help="Also write the vectors and product ids to this file: .npz (numpy arrays ids, vectors, "
                         "level1, level2, model_version) or .jsonl (one {id, vector, ...} line per product).")] = None,
    limit: Annotated[Optional[int], typer.Option(min=1, help="Embed at most this many products.")] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Images per model call.")] = 32,
    image_size: Annotated[int, typer.Option(min=32, max=1024, help="Model input size in pixels.")] = 224,
    cache: Annotated[bool, typer.Option("--cache/--no-cache", help="Reuse and store vectors in Redis "
                                                                  "(PRODCAT_REDIS_URL).")] = False,
    taxonomy: Annotated[Optional[Path], typer.Option(
        help="Taxonomy JSON whose category ids go into level1/level2 (default: PRODCAT_TAXONOMY_PATH when set, "
             "else the ids of a taxonomy built from the catalogue's own paths, as training builds it).")] = None,
) -> None:
    """Embed a catalogue's product images into the Milvus collection at PRODCAT_MILVUS_URI (and --export them)."""
    from embedder.bulk import embed_catalogue
    from embedder.export import export_format, write_vectors  # numpy and the index types: with the command

    if export is not None:
        export_format(export)  # a wrong file name fails before any photo is embedded
    settings = Settings.load()
    tree = _taxonomy(taxonomy or settings.taxonomy_path)
    source = Catalogue.from_options(catalogue, preset, columns, mapping, no_header=no_header, images_dir=images_dir)
    records = _records(source, limit)
    if not records:
        raise DataError(f"no product in {catalogue} ({source.describe()}); nothing to embed")
    exported: list[ImageVector] = []
    vector_cache = _vector_cache(settings) if cache else None
    started = time.monotonic()
    index = _open_index(settings)  # before the model: an unreachable Milvus fails in a second
    try:
        model = load_embedder(image_size, batch_size)
        with _milvus_errors(settings.milvus_uri), Progress(
            TextColumn("[bold]embedding"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[note]}"),
            TimeRemainingColumn(), console=err, transient=True,
        ) as progress:
            task = progress.add_task("embed", total=len(records), note="")
            report = embed_catalogue(
                records, embedder=model, index=index, cache=vector_cache, batch_size=batch_size,
                on_progress=lambda r: progress.update(task, completed=r.processed,
                                                      note=f"{r.failed} failed" if r.failed else ""),
                on_indexed=exported.extend if export is not None else None, taxonomy=tree,
            )
    finally:
        index.close()
    if not report.indexed:
        raise DataError(f"no image of {catalogue} could be embedded: {report.summary()}"
                        + (f"; first: {report.examples[0][0]}: {report.examples[0][1]}" if report.examples else "")
                        + "; check the catalogue's image URLs/paths (or --images-dir)")
    out.print(f"{report.summary()} -> {index.collection} at {settings.milvus_uri} "
              f"({model.version}) in {time.monotonic() - started:.1f}s")
    if export is not None:
        written = write_vectors(export, exported)
        out.print(f"exported {written} vectors ({model.dim}-d) with their product ids to {export}")
    for product_id, reason in report.examples[:5]:
        out.print(f"  failed {product_id}: {reason}", highlight=False)


def _vector_cache(settings: Settings):
    from embedder.cache import VectorCache
    from prodcat.reachable import redis_client

    return VectorCache(redis_client(settings))  # Redis down: one line naming PRODCAT_REDIS_URL


def similar(
    product_id: Annotated[str, typer.Argument(help="Product id whose image vector is in the index.")],
    k: Annotated[int, typer.Option(min=1, max=16_384, help="How many neighbours.")] = 10,
    everywhere: Annotated[bool, typer.Option("--everywhere", help="Search all categories, not only the "
                                                                   "product's level-2 category.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """The products whose images are most similar to this one's (cosine), within its level-2 category."""
    settings = Settings.load()
    index = _open_index(settings)
    try:
        with _milvus_errors(settings.milvus_uri):
            hits = index.similar(product_id, k=k, within_level2=not everywhere)
    finally:
        index.close()
    if as_json:
        print_json({"product": product_id, "similar": [
            {"rank": rank, "id": hit.id, "score": hit.score, "level2": hit.level2}
            for rank, hit in enumerate(hits, start=1)]})
        return
    shown = table("rank", "id", "score", "level2", title=f"most similar to {product_id}")
    for rank, hit in enumerate(hits, start=1):
        shown.add_row(str(rank), hit.id, f"{hit.score:.4f}", hit.level2)
    out.print(shown)


def serve_similarity(
    catalogue: Annotated[Path, typer.Argument(help="The catalogue that was embedded (for titles and images).")],
    preset: PresetOpt = "auto",
    columns: ColumnsOpt = None,
    mapping: MappingOpt = None,
    no_header: NoHeaderOpt = False,
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on (see --host).")] = 8088,
    host: Annotated[str, typer.Option(help="Address to listen on; anything but loopback needs --token.")] = "127.0.0.1",
    judgements: Annotated[Optional[Path], typer.Option(help="SQLite file of judgements "
                                                            "(default: <state dir>/judgements.sqlite).")] = None,
    token: Annotated[Optional[str], typer.Option(
        envvar="PRODCAT_SIMILARITY_TOKEN", show_envvar=False,
        help="Shared secret judges need (open /judge?token=... once); required off loopback. "
             "Default: PRODCAT_SIMILARITY_TOKEN.")] = None,
    taxonomy: Annotated[Optional[Path], typer.Option(
        help="The taxonomy JSON the catalogue was embedded with, to name the level-2 ids (default: "
             "PRODCAT_TAXONOMY_PATH when set, else the catalogue's own paths).")] = None,
) -> None:
    """Serve the similar-products API and the judging page (http://HOST:PORT/judge)."""
    from aiohttp import web

    from embedder.judgements import JudgementStore
    from embedder.similarity_app import check_similarity_bind, product_table, similarity_app

    check_similarity_bind(host, token)  # before the catalogue and Milvus: a refused start costs nothing
    source = Catalogue.from_options(catalogue, preset, columns, mapping, no_header=no_header)
    settings = Settings.load()
    products = product_table(_records(source, None), _taxonomy(taxonomy or settings.taxonomy_path))
    index = _open_index(settings)
    store = JudgementStore(judgements or settings.state_dir / "judgements.sqlite")
    # catalogue images sit beside the file (images/ next to the CSV): only that folder is served
    app = similarity_app(index, store, image_root=catalogue.resolve().parent, products=products, host=host,
                         token=token)
    try:
        out.print(f"{len(products)} products, {index.count()} vectors; judge at http://{host}:{port}/judge"
                  + ("?token=<token>" if token else ""))
        web.run_app(app, host=host, port=port, print=None)
    except OSError as exc:
        raise ProdcatError(f"cannot listen on {host}:{port} ({exc.strerror}); pass --port") from None
    finally:
        store.close()
        index.close()
