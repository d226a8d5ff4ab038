"""The README and docs/ stay true to the repository: a page for every registered model, links that resolve (files and
their anchors), a README of one screen per job that names nothing outside the repository, and the two README
commands `.ci/run` reads (the quick start and the test command) where `.ci/run` looks for them."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO
from zoo.cli import main

README = REPO / "README.md"
DOCS = REPO / "docs"
MAX_README_LINES = 320
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.S | re.M)


def markdown_files() -> list[Path]:
    return [README, *sorted(DOCS.rglob("*.md"))]


def registered_model_keys(capsys) -> list[str]:
    """The keys `zoo list models` prints (one per entry line; paper lines are indented further)."""
    assert main(["list", "models"]) == 0
    lines = capsys.readouterr().out.splitlines()
    return [m.group(1) for line in lines if (m := re.match(r"^  (\w+) ", line))]


def github_anchors(markdown: str) -> set[str]:
    """The heading anchors GitHub generates: lowercase, punctuation dropped, spaces to hyphens, -1, -2 for repeats."""
    anchors: set[str] = set()
    for heading in re.findall(r"^#{1,6} (.+)$", FENCE.sub("", markdown), re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        candidate, n = slug, 0
        while candidate in anchors:
            n += 1
            candidate = f"{slug}-{n}"
        anchors.add(candidate)
    return anchors


def broken_links(path: Path, text: str | None = None) -> list[str]:
    """Every relative link of one Markdown file (its `text`, default its content; code blocks left out) whose file
    or anchor does not exist."""
    problems = []
    for target in LINK.findall(FENCE.sub("", path.read_text() if text is None else text)):
        if re.match(r"[a-z]+:", target):  # https:, mailto:
            continue
        file_part, _, anchor = target.partition("#")
        resolved = (path.parent / file_part).resolve() if file_part else path
        if not resolved.is_relative_to(REPO):
            problems.append(f"{path.relative_to(REPO)}: {target} points outside the repository")
        elif not resolved.exists():
            problems.append(f"{path.relative_to(REPO)}: {target} does not exist")
        elif anchor and resolved.suffix == ".md" and anchor not in github_anchors(resolved.read_text()):
            problems.append(f"{path.relative_to(REPO)}: {target} names no heading of {resolved.name}")
    return problems


def section(markdown: str, title: str) -> str:
    """The text of the `## title` section, up to the next `## ` heading."""
    parts = re.split(r"^## ", markdown, flags=re.M)
    matching = [p for p in parts if p.startswith(title + "\n")]
    assert len(matching) == 1, f"README.md has {len(matching)} '## {title}' sections"
    return matching[0]


def test_every_registered_model_has_its_docs_page(capsys):
    keys = registered_model_keys(capsys)
    assert len(keys) >= 11 and "mocogan" in keys and "diagonal_bilstm" in keys
    missing = [key for key in keys if not (DOCS / "models" / f"{key}.md").is_file()]
    assert missing == [], f"registered models without docs/models/<key>.md: {missing}"


def test_every_model_page_is_linked_from_the_readme_model_table(capsys):
    table = section(README.read_text(), "Models")
    unlinked = [key for key in registered_model_keys(capsys) if f"(docs/models/{key}.md)" not in table]
    assert unlinked == []


def test_every_relative_link_resolves_to_a_file_and_heading_of_the_repository():
    files = markdown_files()
    assert len(files) > 20  # the README, docs/README.md, the topic pages and the model pages
    links = sum(len(LINK.findall(FENCE.sub("", f.read_text()))) for f in files)
    assert links > 100  # the check below must have links to check
    problems = [problem for f in files for problem in broken_links(f)]
    assert problems == []


def test_the_link_check_catches_a_missing_file_a_missing_heading_and_a_path_outside():
    page = DOCS / "page.md"  # never written: the links are resolved from docs/
    text = ("[a](models/no_such_model.md) [b](design.md#no-such-heading) [c](design.md#contracts) "
            "[d](../../shared/DESIGN.md) ![e](quickstart.png)\n```\n[f](inside/a/code/block.md)\n```")
    problems = broken_links(page, text)
    assert len(problems) == 3
    assert "no_such_model.md does not exist" in problems[0]
    assert "design.md#no-such-heading names no heading" in problems[1]
    assert "points outside the repository" in problems[2]


def test_github_anchors_follow_githubs_rules():
    text = ("# The `zoo bench` (300 steps)\n## StyleGAN-V: sparse\n## Scale (DDP)\n## Notes\n## Notes\n"
            "```\n# not one\n```")
    assert github_anchors(text) == {"the-zoo-bench-300-steps", "stylegan-v-sparse", "scale-ddp", "notes", "notes-1"}


def test_the_readme_is_one_screen_per_job_and_names_nothing_outside_the_repository():
    text = README.read_text()
    assert len(text.splitlines()) <= MAX_README_LINES
    for outside in ("../", "ZOO_SHARED", "/work/", "shared/"):
        assert outside not in text, f"README.md names {outside!r}"
    for page in DOCS.rglob("*.md"):
        prose = FENCE.sub("", page.read_text())
        assert "$ZOO_SHARED/" not in prose and "../shared" not in prose, page


def test_ci_reads_the_quick_start_command_from_the_readme():
    """The awk line of `.ci/run`, run on the README as CI runs it, finds the quick-start command."""
    if shutil.which("awk") is None:
        pytest.skip("no awk on this machine (.ci/run needs it)")
    ci = (REPO / ".ci" / "run").read_text()
    awk_program = re.search(r"quick_start=\$\(awk '(.+)' README\.md\)", ci).group(1)
    found = subprocess.run(["awk", awk_program, str(README)], capture_output=True, text=True, check=True).stdout
    assert found.strip() == "pip install -e . && zoo fit --model video_diffusion --data shapes"
    assert found.strip() in section(README.read_text(), "Quick start")


def test_ci_runs_the_readme_test_command_verbatim():
    ci_lines = (REPO / ".ci" / "run").read_text().splitlines()
    command = ci_lines[ci_lines.index('# README, "Run the tests":') + 1]
    assert command == 'pip install -e ".[test]" && pytest'
    block = re.search(r"```bash\n(.*?)\n```", section(README.read_text(), "Run the tests"), re.S).group(1)
    assert block.splitlines()[0] == command
