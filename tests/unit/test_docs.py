"""The documentation: a short README, a site that builds with --strict, a CLI reference that
matches the Typer app, and design.md holding every invariant the code cites."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"


def _generator():
    spec = importlib.util.spec_from_file_location(
        "gen_cli_reference", DOCS / "gen_cli_reference.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_readme_reads_in_ten_minutes_and_its_links_into_docs_exist():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 200
    links = re.findall(r"\]\((docs/[^)#]+)(?:#[^)]*)?\)", text)
    assert links, "the README links into docs/"
    missing = sorted({link for link in links if not (ROOT / link).is_file()})
    assert missing == []


def test_the_cli_reference_is_generated_from_the_typer_app_as_it_is_now():
    generator = _generator()
    committed = generator.TARGET.read_text()
    assert committed == generator.render(), (
        "docs/reference/cli.md differs from the Typer app: run `make cli-reference` and commit it"
    )
    # Every command the app registers has its section.
    from jq_cli.cli.main import COMMANDS

    for name in COMMANDS:
        assert f"## `jq {name}`" in committed, name


def test_the_site_builds_with_strict_checks_and_no_network(tmp_path):
    site = tmp_path / "site"
    config = str(ROOT / "mkdocs.yml")
    build = ["build", "--strict", "--quiet", "--config-file", config, "--site-dir", str(site)]
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", *build],
        cwd=ROOT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    index = (site / "index.html").read_text()
    assert "PostgreSQL as the truth" in index
    assert (site / "design" / "index.html").is_file()
    # The pages load nothing from elsewhere: no web fonts, no CDN scripts or styles.
    for page in site.rglob("*.html"):
        outside = re.findall(
            r'<(?:script|link)[^>]*(?:src|href)="https?://[^"]*"', page.read_text()
        )
        assert outside == [], (page, outside)


def test_every_invariant_the_code_cites_is_a_section_of_design_md():
    design = (DOCS / "design.md").read_text()
    anchors = set(re.findall(r"\{ #(invariant-\d+) \}", design))
    assert anchors == {f"invariant-{n}" for n in range(1, 9)}
    cited: set[str] = set()
    for folder in ("jq_cli", "sql", "tests", "bench", "chaos", "cluster"):
        for path in (ROOT / folder).rglob("*"):
            if path.suffix in (".py", ".sql") and path.is_file():
                found = re.findall(r"[Ii]nvariants? (\d+)", path.read_text(errors="replace"))
                cited.update(f"invariant-{n}" for n in found)
    assert cited, "the code cites the design's invariants"
    assert cited <= anchors, sorted(cited - anchors)
