"""The README and the docs site stay true: generated parts current, every Python, YAML and
docstring example runs, the site lists every page and the whole public API, CI runs the
set-up commands and builds the site."""

from __future__ import annotations

import doctest
import importlib
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
TEXTS = {path.relative_to(ROOT).as_posix(): path.read_text(encoding="utf-8") for path in DOCS}
README = TEXTS["README.md"]
MKDOCS = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
CI = (ROOT / ".ci" / "run").read_text(encoding="utf-8")


def blocks(language: str) -> list[tuple[str, str]]:
    """``(id, code)`` of every fenced block of ``language`` in the README and docs/."""
    found = []
    for name, text in TEXTS.items():
        for i, code in enumerate(re.findall(rf"^```{language}\n(.*?)^```", text, re.S | re.M)):
            found.append((f"{name}:{i}", code))
    return found


def ids(found: list[tuple[str, str]]) -> list[str]:
    return [name for name, _ in found]


@pytest.mark.slow  # 75 s on 2 cores: every console example, each in a fresh process
def test_generated_parts_are_current() -> None:
    done = subprocess.run(
        [sys.executable, "scripts/update_docs.py", "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert done.returncode == 0, done.stdout + done.stderr


PYTHON = blocks("python")


@pytest.mark.parametrize("code", [code for _, code in PYTHON], ids=ids(PYTHON))
def test_python_examples_run(code: str) -> None:
    exec(compile(code, "<docs>", "exec"), {})


YAML = blocks("yaml")


@pytest.mark.parametrize("code", [code for _, code in YAML], ids=ids(YAML))
def test_yaml_examples_are_configs(code: str) -> None:
    """A YAML example that names a shipped file in its first comment is that file (its
    data); every one is a valid config: a model config builds, a compare config's designs
    build at its input."""
    import convzoo
    from convzoo.compare import compare_config

    config = yaml.safe_load(code)
    named = re.match(r"# (configs/\S+\.yaml)", code)
    if named:
        assert config == yaml.safe_load((ROOT / named.group(1)).read_text()), named.group(1)
    if "compare" in config:
        assert named, "a compare: example names its file"
        assert [row.design for row in compare_config(ROOT / named.group(1))] == list(
            config["compare"]
        )
    else:
        convzoo.build(config, meta=True)


def docstring_modules() -> list[str]:
    """The convzoo modules whose docstrings hold doctests (the API reference shows them)."""
    return sorted(
        ".".join(path.relative_to(ROOT).with_suffix("").parts)
        for path in (ROOT / "convzoo").rglob("*.py")
        if ">>>" in path.read_text(encoding="utf-8")
    )


@pytest.mark.parametrize("module", docstring_modules())
def test_docstring_examples_run(module: str) -> None:
    failed, attempted = doctest.testmod(importlib.import_module(module), report=False)
    assert attempted and not failed, f"{failed} of {attempted} doctests failed in {module}"


def test_ci_runs_the_readme_commands() -> None:
    """The set-up block of the README is what CI runs, and what the site's home page says."""
    setup = re.search(r"## Set up\n.*?```bash\n(.*?)```", README, re.S).group(1)
    home = re.search(r"## Set up\n.*?```bash\n(.*?)```", TEXTS["docs/index.md"], re.S).group(1)
    assert setup == home
    for command in setup.strip().splitlines():
        assert command in CI, command


def test_ci_builds_the_site_strictly() -> None:
    assert re.search(r"^\.venv/bin/mkdocs build --strict --site-dir ", CI, re.M)
    assert re.search(r"^strict: true$", MKDOCS, re.M)


def test_every_page_is_in_the_site_and_linked_from_the_readme() -> None:
    pages = sorted(path.name for path in (ROOT / "docs").glob("*.md"))
    nav = sorted(set(re.findall(r"^\s+- (?:[^:\n]+: )?(\S+\.md)$", MKDOCS, re.M)))
    assert nav == pages
    linked = set(re.findall(r"\]\(docs/([\w-]+\.md)(?:#[\w-]+)?\)", README))
    assert linked == set(pages)


def test_readme_links_resolve() -> None:
    for target in re.findall(r"\]\((?!https?:)([^)#]+)(?:#[^)]*)?\)", README):
        assert (ROOT / target).exists(), target


def test_readme_is_short() -> None:
    assert len(README.splitlines()) < 250


def test_api_reference_covers_the_public_api() -> None:
    import convzoo

    shown = set(re.findall(r"^::: convzoo\.(\w+)$", TEXTS["docs/api.md"], re.M))
    assert set(convzoo.__all__) - {"__version__"} <= shown
