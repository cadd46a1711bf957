"""The method documentation lives in docs/: nothing cites the old internal specification, every
function the docs link to exists, and every "docs/<page>.md section x.y" citation names a heading
that exists on that page."""
import ast
import re
from functools import lru_cache
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
PAGES = ("method", "departures", "evaluation")

# Built from pieces so that this file does not match its own patterns.
SPEC_WORD = re.compile(r"\b" + "ALGO" + "RITHM" + r"\b")
SPEC_PATH = "shared/" + "design"
TEXT_SUFFIXES = {".py", ".ipynb", ".md", ".sh", ".yml", ".yaml", ".toml", ".txt", ".cfg", ".ini"}


def scanned_files() -> list[Path]:
    """README.md, data_download.sh and the text files under ctslib/, benchmarks/ (not its results),
    notebooks/, docs/ and tests/."""
    files = [REPO / "README.md", REPO / "data_download.sh"]
    for top in ("ctslib", "benchmarks", "notebooks", "docs", "tests"):
        root = REPO / top
        for p in sorted(root.rglob("*")):
            rel = p.relative_to(root).parts
            if not p.is_file() or p.suffix not in TEXT_SUFFIXES:
                continue
            if "__pycache__" in rel or ".ipynb_checkpoints" in rel or (top == "benchmarks" and rel[0] == "results"):
                continue
            files.append(p)
    return files


def test_no_citation_of_the_internal_specification():
    offenders = []
    for p in scanned_files():
        for no, line in enumerate(p.read_text(errors="replace").splitlines(), 1):
            if SPEC_PATH in line or SPEC_WORD.search(line):
                offenders.append(f"{p.relative_to(REPO)}:{no}: {line.strip()[:100]}")
    assert not offenders, "cite docs/ instead of the internal specification:\n" + "\n".join(offenders)


# ---- code map --------------------------------------------------------------------------------
@lru_cache(maxsize=None)
def defined_names(path: Path) -> dict[str, set[str]]:
    """{top-level name: names defined in its body (methods, fields)} for a Python file."""
    out: dict[str, set[str]] = {}

    def targets(node) -> list[str]:
        if isinstance(node, ast.Assign):
            return [t.id for t in node.targets if isinstance(t, ast.Name)]
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            return [node.target.id]
        return []

    for node in ast.parse(path.read_text()).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            out[node.name] = set()
        elif isinstance(node, ast.ClassDef):
            members = set()
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    members.add(item.name)
                members.update(targets(item))
            out[node.name] = members
        else:
            for name in targets(node):
                out[name] = set()
    return out


def is_defined(path: Path, dotted: str) -> bool:
    head, _, rest = dotted.partition(".")
    names = defined_names(path)
    return head in names and (not rest or rest in names[head])


CODE_REF = re.compile(r"`(ctslib/[\w/]+\.py):([A-Za-z_][\w.]*)`")
LINK = re.compile(r"\[`([^`\]]+)`\]\(\.\./((?:ctslib|tests|benchmarks)/[\w/.]+)\)")


def code_map_rows() -> list[str]:
    text = (DOCS / "method.md").read_text()
    start = text.index("\n## Code map")
    rows = [line for line in text[start:].splitlines() if line.startswith("| ") and "ctslib/" in line]
    return rows


def test_code_map_is_a_table_of_existing_functions():
    rows = code_map_rows()
    assert len(rows) >= 40, "docs/method.md's code map lost its rows"
    missing = []
    for row in rows:
        refs = CODE_REF.findall(row)
        assert refs, f"code map row without a `ctslib/file.py:function` reference: {row}"
        for file, name in refs:
            if not (REPO / file).is_file() or not is_defined(REPO / file, name):
                missing.append(f"{file}:{name}")
    assert not missing, f"docs/method.md code map names functions that do not exist: {missing}"


@pytest.mark.parametrize("page", PAGES)
def test_every_linked_function_exists(page):
    """`file.py:name` references and [`name`](../ctslib/file.py) links on every page."""
    text = (DOCS / f"{page}.md").read_text()
    missing = [f"{f}:{n}" for f, n in CODE_REF.findall(text)
               if not (REPO / f).is_file() or not is_defined(REPO / f, n)]
    for label, target in LINK.findall(text):
        path = REPO / target
        if not path.is_file():
            missing.append(target)
            continue
        name = label.split(":")[-1] if ":" in label else label
        if path.suffix == ".py" and re.fullmatch(r"[A-Za-z_][\w.]*", name) and not is_defined(path, name):
            missing.append(f"{target}:{name}")
    assert not missing, f"docs/{page}.md links to code that does not exist: {missing}"


# ---- section citations -----------------------------------------------------------------------
HEADING = re.compile(r"^#{1,6}\s+(\d+(?:\.\d+)*)\.?\s", re.MULTILINE)
NUMBERS = r"\d+(?:\.\d+)*(?:(?:\s*,\s*|\s+and\s+)\d+(?:\.\d+)*)*"
CITATION = re.compile(r"(?<![\w/])(?:docs/)?(method|departures|evaluation)\.md`?(?:\]\([\w./]+\))?\)?,?\s+"
                      r"sections?\s+(" + NUMBERS + ")")


def headings(page: str) -> set[str]:
    return set(HEADING.findall((DOCS / f"{page}.md").read_text()))


def test_docs_pages_have_the_numbered_sections_the_code_relies_on():
    method = headings("method")
    for number in ("1", "1.1", "1.2", "1.3", "1.4", "2", "2.1", "2.6", "3", "4", "5", "6", "6.1", "6.2", "7", "8", "9"):
        assert number in method, f"docs/method.md has no section {number}"


def test_every_section_citation_resolves():
    known = {page: headings(page) for page in PAGES}
    broken, count = [], 0
    for p in scanned_files():
        for no, line in enumerate(p.read_text(errors="replace").splitlines(), 1):
            for page, numbers in CITATION.findall(line):
                for number in re.findall(r"\d+(?:\.\d+)*", numbers):
                    count += 1
                    if number not in known[page]:
                        broken.append(f"{p.relative_to(REPO)}:{no}: {page}.md section {number}")
    assert count > 50, "expected the code to cite docs/method.md sections"
    assert not broken, "citations of sections that do not exist:\n" + "\n".join(broken)


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_relative_links_in_docs_resolve():
    broken = []
    for md in sorted(DOCS.glob("*.md")) + [REPO / "README.md"]:
        text = md.read_text()
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+:", target):
                continue                                    # http(s) links
            file, _, anchor = target.partition("#")
            dest = (md.parent / file).resolve() if file else md
            if not dest.exists():
                broken.append(f"{md.relative_to(REPO)}: {target}")
            elif anchor and dest.suffix == ".md":
                slugs = {_slug(h) for h in re.findall(r"^#{1,6}\s+(.+)$", dest.read_text(), re.MULTILINE)}
                if anchor not in slugs:
                    broken.append(f"{md.relative_to(REPO)}: {target} (no such heading)")
    assert not broken, "broken links:\n" + "\n".join(broken)


# ---- architecture and layout ---------------------------------------------------------------------
def _package_modules() -> set[str]:
    return {str(p.relative_to(REPO)) for p in (REPO / "ctslib").rglob("*.py")
            if p.name not in ("__init__.py", "__main__.py") and "__pycache__" not in p.parts}


def test_architecture_lists_every_module_and_only_existing_ones():
    text = (DOCS / "architecture.md").read_text()
    named = set(re.findall(r"`((?:ctslib|benchmarks|scripts)/[\w/]+\.py)`", text))
    assert sorted(_package_modules() - named) == [], "modules missing from docs/architecture.md"
    assert sorted(n for n in named if not (REPO / n).is_file()) == [], "docs/architecture.md names missing files"


def test_readme_layout_matches_the_tree():
    """Every folder (first column) and every file.py the README's Layout block names exists."""
    block = (REPO / "README.md").read_text().split("\n## Layout", 1)[1].split("```")[1]
    folders = re.findall(r"^\s*([\w./]+/)\s", block, re.MULTILINE)
    files = re.findall(r"\b(\w+\.py)\b", block)
    assert len(folders) >= 8 and len(files) >= 15, "README's Layout block lost its entries"
    here = {p.name for p in [*REPO.glob("ctslib/**/*.py"), *REPO.glob("scripts/*.py"), *REPO.glob("benchmarks/*.py")]}
    missing = [f for f in folders if not ((REPO / f).is_dir() or (REPO / "ctslib" / f).is_dir())]
    missing += [f for f in files if f not in here]
    assert missing == [], f"README's Layout names what the tree does not have: {missing}"


def test_readme_is_a_landing_page():
    """At most 200 lines; the generated tutorial map and headline table, the set-up and test commands, a figure."""
    text = (REPO / "README.md").read_text()
    assert len(text.splitlines()) <= 200
    for needed in ("<!-- tutorial:start -->", "<!-- headline:start -->", "python -m pytest", "## Licence and citation",
                   'pip install torch==2.13.0 && pip install -e ".[dev]"', "python -m ctslib reproduce --profile quick"):
        assert needed in text, needed
    figures = re.findall(r"!\[[^\]]*\]\(([^)]+\.png)\)", text)
    assert figures and all((REPO / f).is_file() and f.startswith("docs/") for f in figures)
