"""
docs/deploy/grafana-dashboard.json: an importable Grafana dashboard whose every query names
metrics and labels that a real daemon exports after real traffic, so a renamed metric or
label cannot leave a panel silently empty.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any, Iterator

import attrs
import pytest_twisted

from support import metrics_after_traffic, unavailable

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD = ROOT / "docs" / "deploy" / "grafana-dashboard.json"
DATASOURCE = "${datasource}"
INSTANCE = ("instance", "=~", "$instance")  # the matcher every selector carries

# Labels Prometheus attaches to every scraped series; the exposition never carries them.
TARGET_LABELS = frozenset({"instance", "job"})

# Families the daemon exports that no panel shows, each with its reason. Empty: a metric
# added to the daemon makes test_every_exported_family_has_a_panel ask for a panel here.
NOT_ON_THE_DASHBOARD: frozenset[str] = frozenset()

# Grafana's unit ids (packages/grafana-data/src/valueFormats/categories.ts) that fit here.
UNITS = frozenset({"short", "none", "s", "ms", "percentunit", "reqps", "ops", "cps", "mps"})

# --------------------------------------------------------------------------- PromQL

AGGREGATIONS = frozenset(
    {"sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values"}
    | {"bottomk", "topk", "quantile", "limitk", "limit_ratio"}
)
FUNCTIONS = AGGREGATIONS | frozenset(
    "abs absent absent_over_time ceil changes clamp clamp_max clamp_min day_of_month"
    " day_of_week day_of_year days_in_month delta deriv exp floor histogram_avg"
    " histogram_count histogram_fraction histogram_quantile histogram_stddev histogram_stdvar"
    " histogram_sum holt_winters hour idelta increase irate label_join label_replace ln log2"
    " log10 minute month predict_linear rate resets round scalar sgn sort sort_desc sqrt"
    " time timestamp vector year avg_over_time min_over_time max_over_time sum_over_time"
    " count_over_time quantile_over_time stddev_over_time stdvar_over_time last_over_time"
    " present_over_time acos acosh asin asinh atan atanh cos cosh sin sinh tan tanh deg pi"
    " rad".split()
)
KEYWORDS = frozenset(
    {"by", "without", "on", "ignoring", "group_left", "group_right", "offset", "bool"}
    | {"and", "or", "unless", "atan2", "inf", "nan", "start", "end"}
)
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"' + r"|'(?:[^'\\]|\\.)*'|`[^`]*`")
_GRAFANA_VARIABLE = re.compile(r"\$\{?\w+\}?")
_GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
_SELECTOR = re.compile(r"([A-Za-z_:][\w:]*)?\s*\{([^}]*)\}")
_MATCHER = re.compile(r'([A-Za-z_]\w*)\s*(=~|!~|!=|=)\s*"#(\d+)"')
_MADE_LABEL = re.compile(r"\b(label_replace|label_join)\s*\(")
_NUMBER = re.compile(r"(?<![\w:])\d[\w.]*")
_IDENTIFIER = re.compile(r"([A-Za-z_:][\w:]*)\s*(\()?")


@attrs.frozen
class Matcher:
    metric: str
    label: str
    op: str
    value: str


@attrs.frozen
class Query:
    """What one PromQL expression names: metrics, labels, matchers, functions."""

    metrics: frozenset[str]
    grouping: frozenset[str]  # labels in by/without/on/ignoring/group_left/group_right
    matchers: tuple[Matcher, ...]
    made: frozenset[str]  # labels that label_replace or label_join creates
    functions: frozenset[str]


def _unquote(literal: str) -> str:
    body = literal[1:-1]
    return body if literal[0] == "`" else re.sub(r"\\(.)", r"\1", body)


def _made_labels(text: str) -> set[str]:
    """The destination label of each label_replace/label_join: its first string argument."""
    made = set()
    for call in _MADE_LABEL.finditer(text):
        depth, i = 1, call.end()
        while depth and i < len(text):  # to the comma that ends the vector argument
            depth += {"(": 1, "{": 1, "[": 1, ")": -1, "}": -1, "]": -1}.get(text[i], 0)
            if depth == 1 and text[i] == ",":
                found = re.match(r'\s*"#(\d+)"', text[i + 1 :])
                assert found, f"{call.group(1)} without a literal destination label: {text}"
                made.add(found.group(1))
                break
            i += 1
    return made


def parse(expr: str) -> Query:
    """A small PromQL tokenizer: enough to name what an expression reads, not to run it."""
    strings: list[str] = []

    def stash(match: re.Match[str]) -> str:
        strings.append(_unquote(match.group(0)))
        return f'"#{len(strings) - 1}"'

    text = _STRING.sub(stash, expr)
    made = {strings[int(n)] for n in _made_labels(text)}
    text = _GRAFANA_VARIABLE.sub("", text)
    grouping: set[str] = set()
    for clause in _GROUPING.finditer(text):
        grouping |= {label.strip() for label in clause.group(2).split(",") if label.strip()}
    text = _GROUPING.sub(" ", text)
    matchers, metrics = [], set()
    for selector in _SELECTOR.finditer(text):
        name = selector.group(1)
        assert name, f"a selector without a metric name: {expr}"
        metrics.add(name)
        for m in _MATCHER.finditer(selector.group(2)):
            matchers.append(Matcher(name, m.group(1), m.group(2), strings[int(m.group(3))]))
    text = _SELECTOR.sub(lambda s: f" {s.group(1)} ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = _STRING.sub(" ", re.sub(r'"#\d+"', " ", text))
    text = _NUMBER.sub(" ", text)
    functions = set()
    for token in _IDENTIFIER.finditer(text):
        name, call = token.groups()
        if call:
            functions.add(name)
        elif name not in KEYWORDS:
            metrics.add(name)
    return Query(
        frozenset(metrics),
        frozenset(grouping),
        tuple(matchers),
        frozenset(made),
        frozenset(functions),
    )


def test_parse_names_metrics_not_functions_keywords_or_labels():
    query = parse(
        'histogram_quantile(0.95, sum by (le) (rate(a_seconds_bucket{instance=~"$instance",'
        ' via="postgres"}[$__rate_interval]))) / on(instance) group_left(route) b_total'
        " > bool 0.5 and c offset 5m"
    )
    assert query.metrics == {"a_seconds_bucket", "b_total", "c"}
    assert query.grouping == {"le", "instance", "route"}
    assert query.matchers == (
        Matcher("a_seconds_bucket", "instance", "=~", "$instance"),
        Matcher("a_seconds_bucket", "via", "=", "postgres"),
    )
    assert query.functions == {"histogram_quantile", "sum", "rate"}


def test_parse_reads_label_replace_destinations_and_keeps_strings_out():
    query = parse(
        'sum by (class) (label_replace(rate(x_total{a="b,c"}[1m]), "class", "${1}xx",'
        ' "status", "(.).."))'
    )
    assert query.metrics == {"x_total"}
    assert query.made == {"class"}
    assert query.matchers == (Matcher("x_total", "a", "=", "b,c"),)


def test_parse_takes_a_bare_metric_and_one_in_an_aggregation():
    assert parse("up").metrics == {"up"}
    assert parse("sum(x) by (instance)").metrics == {"x"}
    assert parse("sum(x) by (instance)").grouping == {"instance"}
    assert parse("max without (job) (y{})").metrics == {"y"}


# --------------------------------------------------------------------------- the dashboard


def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def all_panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from all_panels(panel.get("panels", []))  # a collapsed row keeps its own


def graph_panels() -> list[dict[str, Any]]:
    return [p for p in all_panels(dashboard()["panels"]) if p["type"] != "row"]


def queries() -> list[tuple[str, str]]:
    """(panel title and refId, expression) of every target of every panel."""
    return [
        (f"{panel['title']} {target['refId']}", target["expr"])
        for panel in graph_panels()
        for target in panel["targets"]
    ]


def variable(name: str) -> dict[str, Any]:
    [found] = [v for v in dashboard()["templating"]["list"] if v["name"] == name]
    return found


def instance_query() -> str:
    query = variable("instance")["query"]
    return query["query"] if isinstance(query, dict) else query


def test_dashboard_is_a_grafana_dashboard_with_rows_and_panels():
    board = dashboard()
    assert 36 <= board["schemaVersion"] <= 41
    assert board["title"] and board["uid"]
    assert board.get("id") is None  # import assigns one
    rows = [p for p in board["panels"] if p["type"] == "row"]
    assert len(rows) >= 5
    ids = [p["id"] for p in all_panels(board["panels"])]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in graph_panels():
        assert panel["type"] in {"timeseries", "stat"}, panel["title"]
        assert panel["title"] and panel.get("description"), panel
        assert panel["datasource"] == {"type": "prometheus", "uid": DATASOURCE}, panel["title"]
        assert panel["targets"], panel["title"]
        ref_ids = [t["refId"] for t in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids)), panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == panel["datasource"], panel["title"]
            assert target["expr"].strip(), panel["title"]
        assert panel["fieldConfig"]["defaults"]["unit"] in UNITS, panel["title"]


def test_panels_sit_on_the_24_column_grid_without_overlapping():
    taken: set[tuple[int, int]] = set()
    for panel in all_panels(dashboard()["panels"]):
        box = panel["gridPos"]
        assert box["x"] >= 0 and box["w"] > 0 and box["x"] + box["w"] <= 24, panel["title"]
        cells = {
            (x, y)
            for x in range(box["x"], box["x"] + box["w"])
            for y in range(box["y"], box["y"] + box["h"])
        }
        assert not cells & taken, f"{panel['title']} overlaps another panel"
        taken |= cells


def test_the_datasource_is_chosen_at_import_and_switchable_after():
    board = dashboard()
    [prometheus] = [i for i in board["__inputs"] if i["name"] == "DS_PROMETHEUS"]
    assert prometheus["type"] == "datasource" and prometheus["pluginId"] == "prometheus"
    chooser = variable("datasource")
    assert chooser["type"] == "datasource" and chooser["query"] == "prometheus"
    assert chooser["current"]["value"] == "${DS_PROMETHEUS}"  # what the import page fills in
    assert variable("instance")["datasource"]["uid"] == DATASOURCE


def test_every_selector_is_filtered_by_the_instance_variable():
    instance = variable("instance")
    assert instance["type"] == "query" and instance["multi"] and instance["includeAll"]
    assert instance["allValue"] == ".*"
    for where, expr in queries():
        query = parse(expr)
        filtered = {m.metric for m in query.matchers if m == Matcher(m.metric, *INSTANCE)}
        assert filtered == query.metrics, f"{where}: {expr}"


def test_expressions_call_only_promql_functions():
    for where, expr in queries():
        assert parse(expr).functions <= FUNCTIONS, f"{where}: {expr}"


def test_promtool_accepts_every_expression(tmp_path):
    """Each expression, Grafana's variables filled in, as a recording rule promtool checks."""
    promtool = shutil.which("promtool")
    if promtool is None:
        unavailable("promtool (Debian's prometheus package) is not installed")
    rules = [
        {"record": f"dashboard:query_{n}", "expr": fill_variables(expr)}
        for n, (_, expr) in enumerate(queries())
    ]
    path = tmp_path / "dashboard-rules.json"  # JSON is YAML, so promtool reads it
    path.write_text(json.dumps({"groups": [{"name": "dashboard", "rules": rules}]}))
    done = subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{len(rules)} rules found" in done.stdout


def fill_variables(expr: str) -> str:
    return expr.replace("$__rate_interval", "1m").replace("$instance", ".*")


# --------------------------------------------------------------------------- a real scrape


@attrs.define
class Scrape:
    """What a /metrics answer names: families by type, and each sample name's labels."""

    types: dict[str, str] = attrs.Factory(dict)
    labels: dict[str, dict[str, set[str]]] = attrs.Factory(dict)  # name -> label -> values

    @classmethod
    def of(cls, text: str) -> "Scrape":
        scrape = cls()
        for line in text.splitlines():
            if line.startswith("# TYPE "):
                _, _, name, kind = line.split()
                scrape.types[name] = kind
            elif line and not line.startswith("#"):
                found = re.match(r"([A-Za-z_:][\w:]*)(?:\{(.*)\})?\s", line)
                assert found, line
                sample = scrape.labels.setdefault(found.group(1), {})
                for label, value in re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', found.group(2) or ""):
                    sample.setdefault(label, set()).add(value)
        return scrape

    def family(self, name: str) -> str | None:
        """The family a series name belongs to (a histogram's _bucket, _sum, _count too)."""
        if name in self.types:
            return name
        base, _, suffix = name.rpartition("_")
        if suffix in {"bucket", "sum", "count"} and self.types.get(base) in {
            "histogram",
            "summary",
        }:
            return base
        return None


def problems_with(scrape: Scrape) -> list[str]:
    """Every name, label and label value the dashboard uses that the scrape lacks."""
    problems = []
    expressions = [*queries(), ("instance variable", instance_query())]
    for where, expr in expressions:
        if where == "instance variable":
            found = re.fullmatch(r"label_values\(\s*([\w:]+)\s*,\s*(\w+)\s*\)", expr)
            assert found, expr
            query = Query(
                frozenset({found.group(1)}),
                frozenset({found.group(2)}),
                (),
                frozenset(),
                frozenset(),
            )
        else:
            query = parse(expr)
        labels_here = set(TARGET_LABELS) | query.made
        for metric in sorted(query.metrics):
            if scrape.family(metric) is None:
                problems.append(f"{where}: {metric} is not exported")
            elif metric not in scrape.labels:
                problems.append(f"{where}: {metric} has no samples after the traffic")
            labels_here |= set(scrape.labels.get(metric, {}))
        for label in sorted(query.grouping - labels_here):
            problems.append(f"{where}: no metric of {expr!r} has a label {label}")
        for matcher in query.matchers:
            values = scrape.labels.get(matcher.metric, {})
            if matcher.label not in values and matcher.label not in TARGET_LABELS:
                problems.append(f"{where}: {matcher.metric} has no label {matcher.label}")
            elif matcher.op == "=" and matcher.label in values:
                if matcher.value not in values[matcher.label]:
                    problems.append(
                        f"{where}: {matcher.metric}{{{matcher.label}={matcher.value!r}}} never"
                        f" occurs (seen: {sorted(values[matcher.label])})"
                    )
    return problems


@pytest_twisted.ensureDeferred
async def test_every_metric_and_label_on_the_dashboard_is_exported(
    fresh_migrated_database_url, redis_url, tmp_path
):
    text = await metrics_after_traffic(fresh_migrated_database_url, redis_url, tmp_path)
    scrape = Scrape.of(text)
    problems = problems_with(scrape)
    assert not problems, "\n".join(problems)
    on_the_dashboard = {
        scrape.family(metric) for _, expr in queries() for metric in parse(expr).metrics
    }
    missing = set(scrape.types) - on_the_dashboard - NOT_ON_THE_DASHBOARD
    assert missing == set(), "exported families no panel shows (add one, or say why not)"


def test_problems_with_names_what_a_scrape_lacks():
    scrape = Scrape.of(
        "# TYPE termrooms_http_requests_total counter\n"
        'termrooms_http_requests_total{method="GET",route="/health",status="200"} 1.0\n'
    )
    assert scrape.family("termrooms_http_requests_total") == "termrooms_http_requests_total"
    assert scrape.family("termrooms_http_request_duration_seconds_bucket") is None
    found = problems_with(scrape)
    assert any("termrooms_http_request_duration_seconds_bucket is not exported" in p for p in found)
    assert not any(p.startswith("Requests per second by route") for p in found)
