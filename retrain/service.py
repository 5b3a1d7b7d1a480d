"""`prodcat retrain`: a round against the live stores, under a Redis lock, and its periodic trigger."""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import redis
from elasticsearch import AsyncElasticsearch, Elasticsearch, helpers

from models.classifier import Classifier
from models.labels import LabelWeighting
from models.registry import ModelRegistry
from models.training import train_ensemble
from prodcat.categoriser import Categoriser
from prodcat.record import ProductRecord, parse_record
from prodcat.settings import Settings
from prodcat.taxonomy import Taxonomy
from retrain.job import GatePolicy, RetrainBusy, RoundReport, Trainer, run_round
from retrain.label_store import LabelStore
from retrain.resolution import resolve, tally
from retrain.weights import importance_weights, label_probabilities
from runtime.loading import DATA, load_announced, load_rules
from runtime.model_updates import Announcement, AnnouncementReader, announce

log = logging.getLogger(__name__)
LOCK = "prodcat:retrain:lock"
RECORD_FIELDS = set(ProductRecord.model_fields)


def current_categoriser(settings: Settings) -> Categoriser:
    """What the stream runs now: the promoted model, else the legacy rules."""
    reader = AnnouncementReader(settings)
    try:
        promoted = reader.latest()
    finally:
        reader.close()
    if promoted is not None:
        return load_announced(promoted)
    return load_rules(settings.rules_path or DATA / "demo_rules.yaml",
                      settings.taxonomy_path or DATA / "demo_taxonomy.json")


async def _gather(settings: Settings, taxonomy):
    es = AsyncElasticsearch(**settings.es_client_kwargs())
    try:
        records, rule_labels = [], {}
        async for hit in helpers.async_scan(es, index=settings.es_index_products, query={"query": {"match_all": {}}}):
            doc = hit["_source"]
            record = parse_record({k: v for k, v in doc.items() if k in RECORD_FIELDS and v is not None})
            records.append(record)
            labels = doc.get("rule_labels")
            if labels is None and str(doc.get("model_version", "")).startswith("rules-"):
                labels = doc.get("categories", [])  # written by the rules themselves
            rule_labels[record.id] = {c for c in labels or () if c in taxonomy}
        store = LabelStore(es, index=settings.es_index_labels, products_index=settings.es_index_products)
        labels = await store.labels()
        human = resolve(tally(labels), taxonomy)
        # each labelled product weighs its self-normalised 1/p (p: what the worker asked it with)
        importance = importance_weights({pid: p for pid, p in label_probabilities(labels).items() if pid in human})
        total = await store.total()
        return records, rule_labels, human, importance, total
    finally:
        await es.close()


def default_trainer(settings: Settings, *, members: tuple[str, ...] = ("logreg", "mlp"), folds: int = 3,
                    current: Categoriser | None = None) -> Trainer:
    """How a round trains its candidate (:func:`models.training.train_ensemble` with the round's settings).

    With ``settings.retrain_fine_tune_epochs`` > 0 and ``current`` a trained model of the round's
    taxonomy, the candidate fine-tunes it (those epochs, the members both have); otherwise, and
    always after the legacy rules, it trains from scratch.
    Public so that a caller can wrap it, e.g. to keep the ``sample_weight`` a round trained with
    (the 1/p importance weights times the rule trust, :func:`retrain.job.training_weights`), or
    to train a first model on rule labels alone (``sample_weight=None``) the same way.
    """
    def train(records: Sequence[ProductRecord], label_sets: Sequence[set[str]], taxonomy: Taxonomy,
              sample_weight: np.ndarray | None) -> Categoriser:
        # the models report's best setting for rule labels: unlabelled products weigh little or
        # nothing, and thresholds are tuned only on products that have a label
        weighting = LabelWeighting(pu_correction=True, unlabelled_weight=settings.retrain_unlabelled_weight)
        init = fine_tune_start(current, taxonomy, members) if settings.retrain_fine_tune_epochs else None
        names = members if init is None else tuple(m for m in members if m in init.members)
        epochs = None if init is None else settings.retrain_fine_tune_epochs
        return train_ensemble(records, label_sets, taxonomy, members=names, folds=folds, sample_weight=sample_weight,
                              weighting=weighting, tune_on="labelled", init=init, epochs=epochs)

    return train


def fine_tune_start(current: Categoriser | None, taxonomy: Taxonomy, members: Sequence[str]) -> Classifier | None:
    """``current`` when a candidate can fine-tune it: a trained model of ``taxonomy`` with one of ``members``."""
    if isinstance(current, Classifier) and current.taxonomy == taxonomy and set(members) & set(current.members):
        return current
    return None


def retrain_once(settings: Settings, *, policy: GatePolicy = GatePolicy(), members: tuple[str, ...] = ("logreg", "mlp"),
                 folds: int = 3, train: Trainer | None = None) -> RoundReport:
    """One round; promotes (registers + announces) only a candidate that passes the gate.

    ``train`` replaces :func:`default_trainer` (``members`` and ``folds`` are its settings).
    """
    lock = redis.Redis.from_url(settings.redis_url, **settings.redis_kwargs())
    if not lock.set(LOCK, str(time.time()), nx=True, ex=6 * 3600):
        raise RetrainBusy("another retraining round is running (Redis lock prodcat:retrain:lock)")
    try:
        current = current_categoriser(settings)
        records, rule_labels, human, importance, total_labels = asyncio.run(_gather(settings, current.taxonomy))
        train = train or default_trainer(settings, members=members, folds=folds, current=current)
        report, candidate = run_round(records, rule_labels, human, current, policy=policy, train=train,
                                      importance=importance, human_weight=settings.labelling_human_weight,
                                      correct_rules=settings.labelling_correct_rules)
        if report.promoted and candidate is not None:
            registry = ModelRegistry(settings.model_registry)
            version = registry.register(candidate, metrics={"gate": report.candidate_metrics})
            announce(settings, Announcement(version=version, location=str(registry.path(version)), kind="model"))
        doc = {**report.__dict__, "labels_total": total_labels}
        Elasticsearch(**settings.es_client_kwargs()).index(index=settings.es_index_evaluations, document=doc)
        return report
    finally:
        lock.delete(LOCK)


def watch(settings: Settings, **kwargs) -> None:
    """Retrain when enough new labels arrived or enough time passed (runs until stopped)."""
    last_total, last_time = None, 0.0
    while True:
        total = asyncio.run(_count_labels(settings))
        due = last_total is None or total - last_total >= settings.retrain_min_new_labels \
            or time.time() - last_time >= settings.retrain_interval_s
        if due and total:
            # each round in a fresh process: TensorFlow keeps ~100 MB per trained model (Keras fit
            # in a loop leaks; clear_session does not help), which a watcher running for months can't
            with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
                try:
                    report = pool.submit(retrain_once, settings, **kwargs).result()
                    log.info("retrain round: %s", report.reason)
                except RetrainBusy as exc:
                    log.info("%s", exc)
            last_total, last_time = total, time.time()
        time.sleep(60)


async def _count_labels(settings: Settings) -> int:
    es = AsyncElasticsearch(**settings.es_client_kwargs())
    try:
        return await LabelStore(es, index=settings.es_index_labels).total()
    finally:
        await es.close()
