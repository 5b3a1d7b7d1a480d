"""User mistakes on the command line: one line naming the problem, a non-zero exit, no traceback.

Every command and subcommand of `prodcat` meets bad option values, missing arguments, unknown
commands and options, missing, empty and malformed files, and services that are not running
(unused localhost ports). Most cases call :func:`prodcat.cli.run` in this process (the same code
path as the `prodcat` script, without the start-up time); a representative set, all the
unreachable-service cases and the ones that import TensorFlow run the real CLI as subprocesses,
concurrently, so the whole file takes well under a minute.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import typer
from rich.console import Console

from prodcat.cli import app, run
from prodcat.tf_logs import _is_tensorflow_log
from tests.helpers import free_port

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = str(ROOT / "prodcat" / "data" / "sample_feed.jsonl")
KAFKA_PORT, ES_PORT, REDIS_PORT = free_port(), free_port(), free_port()
DOWN = {"kafka": f"Kafka at 127.0.0.1:{KAFKA_PORT} is unreachable",
        "es": f"Elasticsearch at http://127.0.0.1:{ES_PORT} is unreachable",
        "redis": f"Redis at redis://127.0.0.1:{REDIS_PORT}/0 is unreachable"}


def environment(tmp: Path) -> dict[str, str]:
    """Settings of a stack that is not running (unused ports) and state only under ``tmp``."""
    return {"PRODCAT_STATE_DIR": str(tmp / "state"), "PRODCAT_MILVUS_URI": str(tmp / "milvus" / "prodcat.db"),
            "PRODCAT_MODEL_REGISTRY": str(tmp / "models"), "PRODCAT_KAFKA_BROKERS": f"127.0.0.1:{KAFKA_PORT}",
            "PRODCAT_ES_URL": f"http://127.0.0.1:{ES_PORT}", "PRODCAT_REDIS_URL": f"redis://127.0.0.1:{REDIS_PORT}/0"}


def make_files(tmp: Path) -> Path:
    """Empty, malformed and category-less inputs, and a folder that is not a model."""
    (tmp / "empty.jsonl").write_text("")
    (tmp / "bad.jsonl").write_text("{not json\n")
    (tmp / "nocat.jsonl").write_text('{"id": "p1", "title": "Red shirt"}\n')
    (tmp / "headerless.csv").write_text("p1,Red shirt,Clothing > Shirts\np2,Blue jeans,Clothing > Jeans\n")
    (tmp / "bad-mapping.yaml").write_text("header: false\ncolumns: {0: id, 1: colour}\n")
    (tmp / "notamodel").mkdir()
    (tmp / "broken-model").mkdir()  # a manifest and nothing else: loading it imports TensorFlow, then fails
    (tmp / "broken-model" / "manifest.json").write_text(json.dumps({"format": FORMAT, "members": ["logreg"],
                                                                    "version": "v1"}))
    return tmp


def expand(args: list[str], tmp: Path) -> list[str]:
    return [a.replace("{tmp}", str(tmp)) for a in args]


def rules_out(tmp: str = "{tmp}") -> list[str]:
    return ["--rules", f"{tmp}/rules.yaml", "--taxonomy", f"{tmp}/taxonomy.json"]


# the commands that read a catalogue, with the arguments before it, and the options they share
CATALOGUE_COMMANDS = [["feed"], ["rules", "generate", *rules_out()], ["train"], ["evaluate", "{tmp}/broken-model"],
                      ["embed"], ["similar-ui"]]
MAPPING_OPTIONS = ("--columns", "--mapping", "--no-header")


def mapping_cases(command: list[str]) -> list[tuple[list[str], str]]:
    """Bad --columns, --mapping and --no-header values for a command that reads a catalogue."""
    csv = "{tmp}/headerless.csv"
    return [
        ([*command, csv, "--columns", "id,title,maker", "--no-header"], "unknown field 'maker'; expected one of id,"),
        ([*command, csv, "--columns", "0=id,9=title", "--no-header"], "column 9 (title) is out of range"),
        ([*command, csv, "--columns", "title,category", "--no-header"], "needs a column mapped to 'id'"),
        ([*command, csv, "--columns", "0=id,title"], "not both"),
        ([*command, csv, "--mapping", "{tmp}/bad-mapping.yaml"], "unknown field 'colour'"),
        ([*command, csv, "--mapping", "/no/such.yaml"], "mapping file /no/such.yaml does not exist"),
        ([*command, csv, "--no-header"], "--no-header: a CSV without a header needs --columns or --mapping"),
    ]


FORMAT = "prodcat.classifier/1"  # models.artifact.FORMAT, not imported: that would load TensorFlow here
RED_SHIRT = '{"id": "1", "title": "Red shirt"}'
# (argv, text the one-line message must contain); every command appears (test_every_command_is_covered)
IN_PROCESS = [
    (["nosuchcommand"], "No such command 'nosuchcommand'"),
    (["--bogus"], "No such option: --bogus"),
    (["stack", "nope"], "No such command 'nope'"),
    (["stack", "up", "--service", "nope"], "unknown service(s) ['nope']"),
    (["stack", "down", "--service", "nope"], "unknown service(s) ['nope']"),
    (["stack", "status", "--bogus"], "No such option: --bogus"),
    (["stack", "logs"], "Missing argument"),
    (["stack", "logs", "kafka", "-n", "0"], "'-n'"),
    (["stack", "logs", "kafka", "-n", "abc"], "'-n'"),
    (["stack", "logs", "zookeeper"], "no service named 'zookeeper'"),
    (["topics", "--bogus"], "No such option: --bogus"),
    (["topics"], "PRODCAT_TOPIC_PARTITIONS"),  # with PRODCAT_TOPIC_PARTITIONS=many, see below
    (["worker", "--loglevel", "loud"], "--loglevel: expected one of"),
    (["feed"], "Missing argument"),
    (["feed", "x.jsonl", "--noise", "2"], "'--noise'"),
    (["feed", "x.jsonl", "--noise", "abc"], "'--noise'"),
    (["feed", "x.jsonl", "--limit", "0"], "'--limit'"),
    (["feed", "/no/such/catalogue.csv"], "catalogue file /no/such/catalogue.csv does not exist"),
    (["feed", "{tmp}/empty.jsonl"], "no product in"),
    (["feed", "{tmp}/bad.jsonl"], "bad.jsonl:1: not valid JSON"),
    (["feed", "{tmp}/nocat.jsonl", "--preset", "amazon"], "unknown catalogue preset 'amazon'"),
    (["feed", "README.md"], "cannot tell the format"),
    (["lag", "--group"], "'--group' requires an argument"),
    (["lag", "--bogus"], "No such option: --bogus"),
    (["categories", "--top", "0"], "'--top'"),
    (["categories"], DOWN["es"]),
    (["retrain", "--folds", "1"], "'--folds'"),
    (["retrain", "--min-gain", "x"], "'--min-gain'"),
    (["rules", "nope"], "No such command 'nope'"),
    (["rules", "generate"], "Missing argument"),
    (["rules", "generate", SAMPLE, "--taxonomy", "{tmp}/t.json"], "Missing option '--rules'"),
    (["rules", "generate", "{tmp}/empty.jsonl", *rules_out()], "no product with a category path"),
    (["rules", "generate", "{tmp}/bad.jsonl", *rules_out()], "not valid JSON"),
    (["rules", "generate", "{tmp}/nocat.jsonl", *rules_out()], "no product with a category path"),
    (["rules", "generate", "/no/such.jsonl", *rules_out()], "catalogue file not found: /no/such.jsonl"),
    (["rules", "generate", SAMPLE, "--rules", "{tmp}/empty.jsonl/rules.yaml", "--taxonomy", "{tmp}/t.json",
      "--min-support", "1"], "cannot write the rules"),
    (["rules", "generate", SAMPLE, *rules_out()], "has 20 products; lower --min-support"),
    (["rules", "generate", SAMPLE, *rules_out(), "--max-depth", "0"], "'--max-depth'"),
    (["demo", "--timeout", "abc"], "'--timeout'"),
    (["demo", "--file", "/no/such.jsonl"], "catalogue file /no/such.jsonl does not exist"),
    (["embed"], "Missing argument"),
    (["embed", "/no/such.csv"], "catalogue file /no/such.csv does not exist"),
    (["embed", "{tmp}/empty.jsonl"], "no product in"),
    (["embed", "{tmp}/bad.jsonl"], "not valid JSON"),
    (["embed", "{tmp}/nocat.jsonl", "--batch-size", "0"], "'--batch-size'"),
    (["embed", "{tmp}/nocat.jsonl", "--image-size", "10"], "'--image-size'"),
    (["embed", "{tmp}/nocat.jsonl", "--cache"], DOWN["redis"]),
    (["similar"], "Missing argument"),
    (["similar", "p1", "--k", "0"], "'--k'"),
    (["similar-ui"], "Missing argument"),
    (["similar-ui", "/no/such.csv"], "catalogue file /no/such.csv does not exist"),
    (["similar-ui", "{tmp}/empty.jsonl", "--port", "0"], "'--port'"),
    (["train"], "Missing argument"),
    (["train", "/no/such.csv"], "catalogue file /no/such.csv does not exist"),
    (["train", "{tmp}/empty.jsonl"], "no usable product in"),
    (["train", "{tmp}/bad.jsonl"], "not valid JSON"),
    (["train", SAMPLE, "--combiner", "x"], "--combiner: expected stacked, weighted or mean"),
    (["train", SAMPLE, "--folds", "1"], "'--folds'"),
    (["train", SAMPLE, "--pu", "2"], "'--pu'"),
    (["train", SAMPLE, "--labels", "{tmp}/missing.jsonl"], "--labels: expected 'rules', 'weak', 'truth' or an existing"),
    (["evaluate"], "Missing argument"),
    (["evaluate", "{tmp}/notamodel"], "Missing argument"),
    (["evaluate", "/no/dir", SAMPLE], "model directory /no/dir does not exist"),
    (["evaluate", "{tmp}/notamodel", SAMPLE], "is not a model directory (no manifest.json)"),
    (["predict"], "Missing argument"),
    (["predict", "{tmp}/notamodel", "{not json"], "not valid UTF-8 JSON"),
    (["predict", "{tmp}/broken-model", "{tmp}/empty.jsonl"], "no product in"),  # JSONL: before TensorFlow
    (["predict", "{tmp}/broken-model", "{tmp}/bad.jsonl"], "bad.jsonl:1: value is not valid UTF-8 JSON"),
    (["predict", "{tmp}/notamodel", "{tmp}/empty.jsonl"], "is not a model directory"),
    (["predict", "{tmp}/notamodel", "/no/such.json"], "expected a JSON object, a .json/.jsonl file or '-'"),
    (["predict", "{tmp}/notamodel", '{"title": "x"}'], "missing id"),
    (["predict", "/no/dir", RED_SHIRT], "model directory /no/dir does not exist"),
    (["predict", "{tmp}/notamodel", RED_SHIRT], "is not a model directory"),
    (["label-ui", "--port", "0"], "'--port'"),
    (["label-ui", "--host", "0.0.0.0"], "without a token"),
    *[case for command in CATALOGUE_COMMANDS for case in mapping_cases(command)],
    (["feed", "{tmp}/headerless.csv", "--columns", "id,title", "--preset", "flipkart"],
     "a column mapping applies to generic catalogues"),
    (["train", "{tmp}/nocat.jsonl", "--columns", "0=id"], "column 0 is a position, but nocat.jsonl is JSONL"),
    (["embed", "{tmp}/headerless.csv", "--columns", "id,title,category", "--no-header", "--images-dir", "/no/dir"],
     "--images-dir: /no/dir is not a folder"),
    (["embed", "{tmp}/headerless.csv", "--export", "{tmp}/vectors.csv"], "--export: expected a file name ending in .npz"),
    (["embed", "{tmp}/headerless.csv", "--export", "{tmp}"], "--export: expected a file name ending in .npz"),
]
# the real CLI: usage errors of typer's click, empty inputs, every service that is down, TensorFlow imported
SUBPROCESS = [
    (["nosuchcommand"], "No such command 'nosuchcommand'"),
    (["feed"], "Missing argument"),
    (["feed", "x.jsonl", "--noise", "2"], "'--noise'"),
    (["feed", "{tmp}/empty.jsonl"], "no product in"),
    (["rules", "generate", "{tmp}/empty.jsonl", *rules_out()], "no product with a category path"),
    (["feed", SAMPLE], DOWN["kafka"]),
    (["topics"], DOWN["kafka"]),
    (["worker"], DOWN["kafka"]),
    (["lag"], DOWN["kafka"]),
    (["retrain"], DOWN["kafka"]),
    (["label-ui"], DOWN["kafka"]),
    (["categories"], DOWN["es"]),
    (["embed", "{tmp}/nocat.jsonl", "--cache"], DOWN["redis"]),
    (["predict", "{tmp}/broken-model", RED_SHIRT], "features.yaml"),  # TensorFlow and Keras imported
]
SETTINGS_NAMED = {DOWN["kafka"]: "PRODCAT_KAFKA_BROKERS", DOWN["es"]: "PRODCAT_ES_URL",
                  DOWN["redis"]: "PRODCAT_REDIS_URL"}


def assert_one_line_error(code: int, stdout: str, stderr: str, expected: str) -> None:
    assert "Traceback" not in stdout + stderr, stderr
    assert code != 0, (stdout, stderr)
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr  # no TensorFlow banner, no log lines, no usage block
    assert lines[0].startswith("error: ") and expected in lines[0], lines[0]
    if expected in SETTINGS_NAMED:
        assert SETTINGS_NAMED[expected] in lines[0]


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Path:
    return make_files(tmp_path_factory.mktemp("cli"))


@pytest.mark.parametrize(("args", "expected"), IN_PROCESS, ids=[" ".join(a)[:60] for a, _ in IN_PROCESS])
def test_user_mistakes_in_process(args, expected, files, monkeypatch, capsys):
    for name, value in environment(files).items():
        monkeypatch.setenv(name, value)
    if args == ["topics"]:
        monkeypatch.setenv("PRODCAT_TOPIC_PARTITIONS", "many")
    code = run(expand(args, files))
    captured = capsys.readouterr()
    assert_one_line_error(code, captured.out, captured.err, expected)


@pytest.fixture(scope="module")
def subprocess_results(files) -> dict[str, subprocess.CompletedProcess]:
    """Every SUBPROCESS case run at once (the Kafka ones wait for librdkafka's timeout)."""
    env = {**os.environ, **environment(files)}

    def cli(args: list[str]) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "prodcat", *expand(args, files)], capture_output=True,
                              text=True, env=env, cwd=ROOT, timeout=120)

    with ThreadPoolExecutor(8) as pool:  # 2 cores: more at once only slows each down
        done = list(pool.map(cli, [args for args, _ in SUBPROCESS]))
    return {" ".join(args): proc for (args, _), proc in zip(SUBPROCESS, done)}


@pytest.mark.parametrize(("args", "expected"), SUBPROCESS, ids=[" ".join(a)[:60] for a, _ in SUBPROCESS])
def test_user_mistakes_real_cli(args, expected, subprocess_results):
    proc = subprocess_results[" ".join(args)]
    assert_one_line_error(proc.returncode, proc.stdout, proc.stderr, expected)


ROOT_COMMAND = typer.main.get_command(app)


def _command_paths(group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    paths = []
    for name, command in group.commands.items():
        paths.append((*prefix, name))
        if hasattr(command, "commands"):
            paths.extend(_command_paths(command, (*prefix, name)))
    return paths


def _path_of(args: list[str]) -> tuple[str, ...]:
    """The (sub)command an argv runs: the leading words that name commands."""
    path, group = (), ROOT_COMMAND
    for word in args:
        command = getattr(group, "commands", {}).get(word)
        if command is None:
            break
        path, group = (*path, word), command
    return path


COMMANDS = _command_paths(ROOT_COMMAND)


def test_every_command_is_covered():
    """Each command and subcommand has bad-input cases above, besides the unknown option of every one."""
    covered = {_path_of(args) for args, _ in IN_PROCESS + SUBPROCESS}
    missing = [" ".join(path) for path in COMMANDS if path not in covered]
    assert not missing, f"no bad-input case for: {missing}"


def _options_of(path: tuple[str, ...]) -> set[str]:
    command = ROOT_COMMAND
    for word in path:
        command = command.commands[word]
    return {name for param in command.params for name in getattr(param, "opts", [])}


CASE_OPTIONS = (*MAPPING_OPTIONS, "--images-dir", "--export")  # the catalogue options: each needs its own case


def test_every_catalogue_option_is_covered():
    """Every command that takes a catalogue option (--columns, --mapping, --no-header, --images-dir, --export)
    has a bad-input case using it, so a new command reading catalogues cannot skip them."""
    used = {(_path_of(args), option) for args, _ in IN_PROCESS + SUBPROCESS for option in args if option in CASE_OPTIONS}
    wanted = {(path, option) for path in COMMANDS for option in CASE_OPTIONS if option in _options_of(path)}
    assert {path for path, _ in wanted} >= {_path_of(expand(c, Path("/t"))) for c in CATALOGUE_COMMANDS}
    missing = sorted(f"{' '.join(path)} {option}" for path, option in wanted - used)
    assert not missing, f"no bad-input case for: {missing}"


@pytest.mark.parametrize(("stdin", "expected"), [
    ("", "no product in stdin"),
    ('{"id": "1", "title": "Red shirt"}\n{"title": "no id"}\n', "stdin:2: missing id"),
    ('{"id": "1", "title": "Lamp"}\n\n[1, 2]\n', "stdin:3: expected a JSON object"),
])
def test_predict_reads_jsonl_from_stdin_mistakes(stdin, expected, files, monkeypatch, capsys):
    """`predict MODEL` and `predict MODEL -` read JSONL on stdin; an empty input or a bad line is one line."""
    for name, value in environment(files).items():
        monkeypatch.setenv(name, value)
    for args in (["predict", str(files / "broken-model")], ["predict", str(files / "broken-model"), "-"]):
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin.encode())))
        code = run(args)
        captured = capsys.readouterr()
        assert_one_line_error(code, captured.out, captured.err, expected)


def test_predict_refuses_a_terminal_on_stdin(files, monkeypatch, capsys):
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr(sys, "stdin", Terminal())
    code = run(["predict", str(files / "broken-model")])
    captured = capsys.readouterr()
    assert_one_line_error(code, captured.out, captured.err, "JSONL on stdin")


@pytest.mark.parametrize("path", COMMANDS, ids=[" ".join(p) for p in COMMANDS])
def test_every_command_refuses_an_unknown_option(path, capsys):
    code = run([*path, "--no-such-option"])
    captured = capsys.readouterr()
    assert_one_line_error(code, captured.out, captured.err, "No such option: --no-such-option")


def test_help_and_bare_groups(capsys):
    for path in [(), *COMMANDS]:
        assert run([*path, "--help"]) == 0, path
        assert "Usage" in capsys.readouterr().out, path
    for group in ([], ["stack"], ["rules"]):  # a group without a command shows its help and fails
        assert run(group) == 2
        captured = capsys.readouterr()
        assert "Usage" in captured.out and "Traceback" not in captured.out + captured.err


def test_stack_status_json_and_table_when_piped(tmp_path):
    """Nothing runs on the unused ports: exit 1; --json parses; the piped table is not cut with '…'."""
    env = {**os.environ, **environment(tmp_path)}
    proc = subprocess.run([sys.executable, "-m", "prodcat", "stack", "status", "--json"], capture_output=True,
                          text=True, env=env, cwd=ROOT, timeout=60)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    services = {s["service"]: s for s in json.loads(proc.stdout)["services"]}
    assert services["kafka"]["healthy"] is False and services["kafka"]["address"] == f"127.0.0.1:{KAFKA_PORT}"
    assert set(services) == {"kafka", "elasticsearch", "redis", "milvus"}
    milvus_uri = str(tmp_path / ("a-milvus-lite-folder-with-a-long-name-" * 3) / "prodcat.db")
    proc = subprocess.run([sys.executable, "-m", "prodcat", "stack", "status"], capture_output=True, text=True,
                          env={**env, "PRODCAT_MILVUS_URI": milvus_uri}, cwd=ROOT, timeout=60)
    assert proc.returncode == 1 and "…" not in proc.stdout
    # the address column, its folded lines joined: the whole path is there
    rows = [line.split("│") for line in proc.stdout.splitlines() if line.count("│") == 5]
    addresses = "".join(row[2].strip() for row in rows).replace(" ", "")
    assert milvus_uri in addresses, proc.stdout


def test_metrics_table_wraps_instead_of_cutting():
    from prodcat.commands.models import METRIC_KEYS, _metrics_table

    console = Console(file=io.StringIO(), width=80)  # what a pipe gets: 80 columns, not a terminal
    metrics = {key: 0.123456 for key in METRIC_KEYS}
    members = ("ensemble", "logreg", "mlp", "wide_deep", "textcnn", "gru")
    console.print(_metrics_table("validation", {name: metrics for name in members}))
    text = console.file.getvalue()
    assert "…" not in text and all(name in text for name in members) and "0.123" in text, text


def test_tensorflow_start_up_lines_are_recognised():
    banner = [b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
              b"I0000 00:00:1796159336.549741    9837 port.cc:153] oneDNN custom operations are on.",
              b"E0000 00:00:1796159191.796324    8153 cuda_platform.cc:52] failed call to cuInit",
              b"To enable the following instructions: AVX2 AVX512F FMA, in other operations, rebuild"]
    assert all(_is_tensorflow_log(line) for line in banner)
    assert not any(_is_tensorflow_log(line) for line in [b"error: something prodcat says", b"INFO faust: started",
                                                         b"<string>:9: UserWarning: a Python warning"])


def test_no_image_embedded_is_an_error(files, monkeypatch, capsys):
    """Photos that are all missing: one line with the reasons, non-zero exit (model and index stubbed)."""
    from embedder.bulk import EmbedReport
    from prodcat.commands import embedder as embedder_cli

    class Index:
        collection = "product_images"

        def close(self) -> None:
            pass

    class Model:
        version = "stub"

    report = EmbedReport()
    for n in range(10):
        report.fail(f"p{n}", f"not found: /no/such/{n}.jpg")
    for name, value in environment(files).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(embedder_cli, "_open_index", lambda settings: Index())
    monkeypatch.setattr(embedder_cli, "load_embedder", lambda image_size, batch_size: Model())
    monkeypatch.setattr("embedder.bulk.embed_catalogue", lambda records, **kwargs: report)
    code = run(["embed", str(files / "nocat.jsonl")])
    captured = capsys.readouterr()
    assert_one_line_error(code, captured.out, captured.err, "failed 10 (not found: 10)")
    assert "p0: not found: /no/such/0.jpg" in captured.err


@pytest.mark.integration
def test_categories_and_lag_json_on_the_real_stack(isolated, monkeypatch, capsys):
    from elasticsearch import Elasticsearch

    from runtime.sinks.elastic import PRODUCTS_MAPPING
    from streams.topics import ensure_topics

    for name, value in isolated.to_env().items():
        monkeypatch.setenv(name, value)
    es = Elasticsearch(**isolated.es_client_kwargs())
    es.indices.create(index=isolated.es_index_products, mappings=PRODUCTS_MAPPING)
    for n, names in enumerate([["Clothing", "Dresses"], ["Clothing"], ["Shoes"]]):
        es.index(index=isolated.es_index_products, id=str(n), document={"category_names": names})
    es.indices.refresh(index=isolated.es_index_products)
    try:
        assert run(["categories", "--json", "--top", "2"]) == 0
        data = json.loads(capsys.readouterr().out)
        assert data["products"] == 3
        # ties by count come in key order
        assert data["categories"] == [{"category": "Clothing", "products": 2}, {"category": "Dresses", "products": 1}]
    finally:
        es.indices.delete(index=isolated.es_index_products)
        es.close()
    ensure_topics(isolated)
    deadline = time.monotonic() + 30  # a fresh broker answers NOT_COORDINATOR until its group coordinator is up
    while (code := run(["lag", "--json"])) != 0 and time.monotonic() < deadline:
        assert "did not answer the lag query" in capsys.readouterr().err
        time.sleep(1)
    assert code == 0
    data = json.loads(capsys.readouterr().out)
    assert data["group"] == isolated.consumer_group and data["total_lag"] == 0
    assert len(data["partitions"]) == isolated.topic_partitions
