"""The documents operators read stay in step with the code."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from termrooms.config import SETTINGS

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("setting", SETTINGS, ids=lambda s: s.name)
def test_readme_configuration_table_has_every_setting(setting):
    readme = (ROOT / "README.md").read_text()
    assert f"| `{setting.flag}`" in readme
    assert f"`{setting.env}`" in readme
    assert f"`{setting.name}`" in readme


def test_docs_protocol_carries_the_shared_contract_unchanged():
    contract = ROOT.parent / "shared" / "spec" / "protocol.md"
    if not contract.exists():
        pytest.skip("the shared contract is not beside this checkout")
    assert contract.read_text() in (ROOT / "docs" / "protocol.md").read_text()


# The v1.1 sections that have landed: docs/protocol.md carries each one unchanged.
LANDED_V1_1 = (
    "Notifications to a user",
    "Direct messages",
    "Mentions",
    "Editing",
    "Search",
    "Tasks",
    "Polls",
    "Retrospectives",
)


@pytest.mark.parametrize("title", LANDED_V1_1)
def test_docs_protocol_carries_each_landed_v1_1_section_unchanged(title):
    contract = ROOT.parent / "shared" / "spec" / "protocol-v1.1.md"
    if not contract.exists():
        pytest.skip("the shared contract is not beside this checkout")
    sections = re.split(r"\n(?=## )", contract.read_text())
    [section] = [s for s in sections if s.startswith(f"## {title}\n")]
    assert section.strip() in (ROOT / "docs" / "protocol.md").read_text()


def test_docs_deploy_links_name_files_that_exist():
    deploy = ROOT / "docs" / "deploy.md"
    links = re.findall(r"\]\(([^)#:]+)\)", deploy.read_text())
    assert "deploy/nginx.conf" in links
    missing = [link for link in links if not (deploy.parent / link).exists()]
    assert missing == []
