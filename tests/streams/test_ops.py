"""The operators' files (streams/ops/) against the worker's real metrics: the Grafana dashboard and the
Prometheus alert rules may only query metrics a WorkerMetrics registry exports; promtool accepts the
rules and the Prometheus config; docker-compose wires Prometheus and Grafana to them."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client import generate_latest

from streams.worker_metrics import WorkerMetrics

ROOT = Path(__file__).resolve().parents[2]
OPS = ROOT / "streams" / "ops"
DASHBOARD = OPS / "grafana" / "dashboards" / "prodcat.json"
RULES = OPS / "prometheus" / "alerts.yml"
PROMETHEUS = OPS / "prometheus" / "prometheus.yml"
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]

# series a Prometheus server makes itself for every target, not exported by the worker
PROMETHEUS_OWN = {"up"}
# the sample names Prometheus ingests for each metric type of the text exposition
SUFFIXES = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_count", "_sum", "_created"),
            "summary": ("", "_count", "_sum", "_created"), "gauge": ("",), "info": ("",), "untyped": ("",)}
PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool",
                "offset", "inf", "nan"}


def exported_names() -> set[str]:
    """Every sample name the worker's registry can expose, from the `# TYPE` lines of a real exposition
    (a labelled counter has no sample until its first increment, but its TYPE line is there)."""
    text = generate_latest(WorkerMetrics().registry).decode()
    names = set()
    for name, kind in re.findall(r"^# TYPE (\S+) (\S+)$", text, flags=re.MULTILINE):
        base = name.removesuffix("_total") if kind == "counter" else name
        names.update(base + suffix for suffix in SUFFIXES[kind])
    return names


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects: identifiers that are not functions, keywords,
    label names (in {...} or by/without/on/ignoring/group_*(...)), durations or Grafana variables."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # strings first: they may hold anything
    expr = re.sub(r"\{[^}]*\}", "", expr)  # label matchers
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", expr)
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # ranges and subqueries, [$__rate_interval] included
    expr = re.sub(r"\$\w+", "", expr)
    names = set()
    for match in re.finditer(r"(?<![\w.])([a-zA-Z_:][\w:]*)\s*(\()?", expr):
        word, call = match.group(1), match.group(2)
        if call is None and word.lower() not in PROMQL_WORDS:
            names.add(word)
    return names


def dashboard_exprs() -> dict[str, str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return {f"{panel['title']} / {target['refId']}": target["expr"]
            for panel in dashboard["panels"] for target in panel.get("targets", [])}


def rule_exprs() -> dict[str, str]:
    rules = yaml.safe_load(RULES.read_text())
    return {rule.get("alert") or rule["record"]: rule["expr"] for group in rules["groups"] for rule in group["rules"]}


def test_metric_names_are_read_from_promql() -> None:
    expr = ('histogram_quantile(0.95, sum by (stage, le) (rate(prodcat_stage_seconds_bucket{stage!="x"}'
            '[$__rate_interval]))) > 0.5 and on (instance) up{job="w"} == 0 or deriv(a:b[15m:1m]) > bool 1e3')
    assert metric_names(expr) == {"prodcat_stage_seconds_bucket", "up", "a:b"}


def test_the_exposition_names_include_the_suffixes_prometheus_stores() -> None:
    names = exported_names()
    assert {"prodcat_events_in_total", "prodcat_stage_seconds_bucket", "prodcat_model_info", "prodcat_ready",
            "prodcat_waiting", "prodcat_consumer_lag"} <= names
    assert "prodcat_events_in" not in names  # a counter is stored as _total only


@pytest.mark.parametrize("source", ["dashboard", "rules"])
def test_every_queried_metric_is_exported_by_the_worker(source: str) -> None:
    exprs = dashboard_exprs() if source == "dashboard" else rule_exprs()
    assert exprs, f"no expressions found in the {source}"
    exported = exported_names() | PROMETHEUS_OWN
    unknown = {where: sorted(metric_names(expr) - exported) for where, expr in exprs.items()
               if metric_names(expr) - exported}
    assert not unknown, f"metrics the worker does not export: {unknown}"
    assert all(metric_names(expr) for expr in exprs.values()), "an expression that selects no metric"


def test_the_dashboard_shows_what_operators_watch() -> None:
    queried = set().union(*map(metric_names, dashboard_exprs().values()))
    assert {"prodcat_consumer_lag", "prodcat_events_in_total", "prodcat_events_out_total", "prodcat_deadletters_total",
            "prodcat_stage_seconds_bucket", "prodcat_model_info", "prodcat_labelling_requests_total",
            "prodcat_ready"} <= queried
    panels = json.loads(DASHBOARD.read_text())["panels"]
    assert all(p["datasource"]["uid"] == "prodcat-prometheus" for p in panels)  # the provisioned datasource


def test_the_rules_alert_on_lag_dead_letters_and_readiness() -> None:
    rules = rule_exprs()
    assert {"ProdcatConsumerLagGrowing", "ProdcatDeadLetterSpike", "ProdcatWorkerNotReady"} <= set(rules)
    assert "prodcat_consumer_lag" in metric_names(rules["ProdcatConsumerLagGrowing"])
    assert "prodcat_deadletters_total" in metric_names(rules["ProdcatDeadLetterSpike"])
    assert "prodcat_ready" in metric_names(rules["ProdcatWorkerNotReady"])


def test_the_ready_gauge_mirrors_the_policy_health() -> None:
    metrics = WorkerMetrics()
    metrics.set_health({"elasticsearch": "connection refused"})
    text = generate_latest(metrics.registry).decode()
    assert "prodcat_ready 0.0" in text
    assert 'prodcat_waiting{stage="elasticsearch"} 1.0' in text and 'prodcat_waiting{stage="kafka"} 0.0' in text
    metrics.set_health({})
    text = generate_latest(metrics.registry).decode()
    assert "prodcat_ready 1.0" in text and 'prodcat_waiting{stage="elasticsearch"} 0.0' in text


def test_compose_runs_prometheus_and_grafana_on_these_files() -> None:
    prometheus, grafana = COMPOSE["prometheus"], COMPOSE["grafana"]
    mounts = {m.split(":")[1]: (ROOT / m.split(":")[0]).resolve() for s in (prometheus, grafana) for m in s["volumes"]
              if m.startswith("./")}
    assert mounts["/etc/prometheus"] == PROMETHEUS.parent
    assert mounts["/var/lib/grafana/dashboards"] == DASHBOARD.parent
    assert mounts["/etc/grafana/provisioning"] == OPS / "grafana" / "provisioning"
    scrape = yaml.safe_load(PROMETHEUS.read_text())["scrape_configs"][0]["static_configs"][0]["targets"]
    port = COMPOSE["worker"]["environment"]["PRODCAT_WEB_PORT"]
    assert scrape == [f"worker:{port}"]
    datasource = yaml.safe_load((OPS / "grafana" / "provisioning" / "datasources" / "prometheus.yml").read_text())
    assert datasource["datasources"][0]["url"] == f"http://prometheus:{prometheus['ports'][0].split(':')[1]}"


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed: `apt-get install -y prometheus` (Debian) provides it; the metric-name "
                    "checks above still ran")
    return subprocess.run([promtool, *args], capture_output=True, text=True, timeout=60, check=False)


def test_promtool_accepts_the_rules() -> None:
    result = _promtool("check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_accepts_the_prometheus_config(tmp_path: Path) -> None:
    # promtool checks that the scrape's token file exists: docker-compose mounts it as a secret,
    # here a copy of the config points at a token written to tmp_path
    token = tmp_path / "prodcat_web_token"
    token.write_text("a-test-token")
    config = PROMETHEUS.read_text()
    assert "/run/secrets/prodcat_web_token" in config
    (tmp_path / "prometheus.yml").write_text(config.replace("/run/secrets/prodcat_web_token", str(token)))
    shutil.copy(PROMETHEUS.parent / "alerts.yml", tmp_path / "alerts.yml")
    result = _promtool("check", "config", str(tmp_path / "prometheus.yml"))
    assert result.returncode == 0, result.stdout + result.stderr
