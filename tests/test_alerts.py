"""docs/deploy/alerts.yml: promtool accepts it, its unit tests fire every alert and keep
each quiet on healthy series, every alert has its runbook in docs/deploy.md, and every
metric it names is one a real daemon exports."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest_twisted
import yaml
from test_metrics import scraped

from support import metrics_after_traffic, unavailable

ROOT = Path(__file__).resolve().parent.parent
ALERTS = ROOT / "docs" / "deploy" / "alerts.yml"
ALERTS_TEST = ROOT / "docs" / "deploy" / "alerts_test.yml"
PROMETHEUS_YML = ROOT / "docs" / "deploy" / "prometheus.yml"
DEPLOY_MD = ROOT / "docs" / "deploy.md"

PROMETHEUS_OWN = {"up"}  # written by Prometheus for each target, not by the daemon
TARGET_LABELS = {"job", "instance"}  # added by Prometheus at scrape time
PROMQL_WORDS = {"and", "or", "unless", "bool", "offset", "inf", "nan"}


def promtool(*args: str) -> subprocess.CompletedProcess:
    binary = shutil.which("promtool")
    if binary is None:
        unavailable("promtool is not installed (Debian: apt-get install prometheus)")
    return subprocess.run([binary, *args], capture_output=True, text=True, timeout=60)


def rules() -> list[dict]:
    return [
        rule for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]
    ]


def test_alert_rules_pass_promtool_check():
    result = promtool("check", "rules", str(ALERTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules())} rules found" in result.stdout


def test_alert_unit_tests_pass_promtool_test():
    result = promtool("test", "rules", str(ALERTS_TEST))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_sample_prometheus_config_loads_the_rules_and_scrapes_the_job_they_expect(tmp_path):
    # Installed as deploy.md says: both files in one directory, the rules under this name.
    shutil.copy(PROMETHEUS_YML, tmp_path / "prometheus.yml")
    shutil.copy(ALERTS, tmp_path / "termrooms-alerts.yml")
    result = promtool("check", "config", str(tmp_path / "prometheus.yml"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules())} rules found" in result.stdout
    config = yaml.safe_load(PROMETHEUS_YML.read_text())
    assert [job["job_name"] for job in config["scrape_configs"]] == ["termrooms"]
    assert any('up{job="termrooms"}' in str(rule["expr"]) for rule in rules())


def test_unit_tests_fire_every_alert_at_each_severity_and_keep_each_quiet():
    fired: set[tuple[str, str]] = set()
    quiet: set[str] = set()
    for case in yaml.safe_load(ALERTS_TEST.read_text())["tests"]:
        for check in case["alert_rule_test"]:
            if check["exp_alerts"]:
                for alert in check["exp_alerts"]:
                    fired.add((check["alertname"], alert["exp_labels"]["severity"]))
            else:
                quiet.add(check["alertname"])
    defined = {(rule["alert"], rule["labels"]["severity"]) for rule in rules()}
    assert fired == defined
    assert quiet == {name for name, _ in defined}


def github_anchors(markdown: str) -> set[str]:
    """The anchors GitHub gives a document's headings."""
    anchors = set()
    prose = re.sub(r"^```.*?^```", "", markdown, flags=re.MULTILINE | re.DOTALL)
    for heading in re.findall(r"^#+ (.+)$", prose, flags=re.MULTILINE):
        anchors.add(re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-"))
    return anchors


def test_every_alert_has_a_severity_a_summary_and_a_runbook_in_deploy_md():
    anchors = github_anchors(DEPLOY_MD.read_text())
    assert "alerts" in anchors
    for rule in rules():
        assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
        annotations = rule["annotations"]
        assert annotations["summary"] and annotations["description"], rule["alert"]
        document, _, anchor = annotations["runbook_url"].partition("#")
        assert document == "docs/deploy.md", rule["alert"]
        assert anchor == rule["alert"].lower() and anchor in anchors, rule["alert"]


def selectors(expr: str) -> list[tuple[str, set[str]]]:
    """Each metric an expression reads, with the label names its selector matches on."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = re.sub(r"\[[^\]]*\]", "", text)  # range durations
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    found = []
    for match in re.finditer(r"(?<![\w.:])([A-Za-z_:][\w:]*)\s*(\{[^}]*\})?", text):
        name, matchers = match.group(1), match.group(2) or ""
        if name in PROMQL_WORDS or text[match.end(1) :].lstrip().startswith("("):
            continue  # an operator, or a function's name
        found.append((name, set(re.findall(r"(\w+)\s*(?:=~|!~|!=|=)", matchers))))
    return found


def test_selectors_reads_names_and_label_names_but_not_functions_or_operators():
    expr = (
        'sum without (code) (rate(a_total{code="4009", route!~"/x|/y"}[5m])) > 0.1 and b'
        " or histogram_quantile(0.95, rate(c_bucket[5m])) * 60"
    )
    assert selectors(expr) == [("a_total", {"code", "route"}), ("b", set()), ("c_bucket", set())]


@pytest_twisted.ensureDeferred
async def test_every_metric_the_alerts_read_is_exported_by_a_real_daemon(
    fresh_migrated_database_url, redis_url, tmp_path
):
    exported = scraped(
        await metrics_after_traffic(fresh_migrated_database_url, redis_url, tmp_path)
    )
    labels: dict[str, set[str]] = {}
    for name, label_pairs in exported:
        labels.setdefault(name, set()).update(label for label, _ in label_pairs)
    read = [selector for rule in rules() for selector in selectors(str(rule["expr"]))]
    assert {name for name, _ in read} >= {"termrooms_http_requests_total", "up"}
    for name, matched in read:
        if name in PROMETHEUS_OWN:
            continue
        assert name in labels, f"{name} is not exported"
        assert matched - TARGET_LABELS <= labels[name], f"{name} has no {matched - labels[name]}"
