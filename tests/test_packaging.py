"""Licence, citation and install files: LICENSE, CITATION.cff (and the README block that repeats it), extras,
environment.yml, CI and pre-commit configuration, .gitignore."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

import yaml

try:
    import tomllib
except ImportError:                                  # Python 3.10
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[1]


def cff() -> dict:
    return yaml.safe_load((REPO / "CITATION.cff").read_text())


def bibtex(c: dict) -> str:
    """The README's BibTeX block as CITATION.cff determines it: the paper (first reference), then this repository."""
    paper = c["references"][0]
    arxiv = next(i["value"] for i in paper["identifiers"] if i["value"].startswith("arXiv:"))
    first = paper["authors"][0]["family-names"].lower()
    authors = " and ".join(f"{a['family-names']}, {a['given-names']}" for a in paper["authors"])
    return "\n".join([
        f"@article{{{first}{paper['year']}cts,",
        f"  title   = {{{paper['title']}}},",
        f"  author  = {{{authors}}},",
        f"  journal = {{{paper['journal']} {arxiv}}},",
        f"  year    = {{{paper['year']}}},",
        f"  url     = {{{paper['url']}}}",
        "}",
        "@software{ctslib,",
        f"  title   = {{{c['title']}}},",
        f"  author  = {{{{{c['authors'][0]['name']}}}}},",
        f"  version = {{{c['version']}}},",
        f"  license = {{{c['license']}}}",
        "}",
    ])


def test_readme_citation_block_matches_citation_cff():
    section = (REPO / "README.md").read_text().split("\n## Licence and citation", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```bibtex\n(.*?)\n```", section, re.DOTALL)
    assert len(blocks) == 1, "README's 'Licence and citation' section needs one ```bibtex block"
    assert blocks[0] == bibtex(cff()), "README's BibTeX differs from CITATION.cff; it should read:\n" + bibtex(cff())


def test_citation_cff_names_the_paper_and_agrees_with_pyproject():
    c = cff()
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert c["cff-version"] == "1.2.0" and c["type"] == "software"
    assert (c["version"], c["license"]) == (project["version"], project["license"])
    paper = c["references"][0]
    assert paper["title"] == "CTS: A Consistency-Based Medical Image Segmentation Model"
    assert paper["year"] == 2024 and any(i["value"] == "arXiv:2405.09056" for i in paper["identifiers"])
    assert [a["family-names"] for a in paper["authors"]][0] == "Zhang"


def test_licence_file_is_the_spdx_licence_pyproject_declares():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert project["license"] == "MIT" and project["license-files"] == ["LICENSE", "ctslib/weights/NOTICE.md"]
    notice = (REPO / "ctslib" / "weights" / "NOTICE.md").read_text()
    for name in ("lgg-tiny64", "ddti-tiny64"):                    # every shipped checkpoint's terms are stated
        assert f"`{name}.pt`" in notice and "non-commercial" in notice.lower()
    text = (REPO / "LICENSE").read_text()
    assert text.startswith("MIT License") and "Permission is hereby granted, free of charge" in text


def test_extras_split_learners_from_contributors_and_environment_yml_is_for_learners():
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    names = {k: {re.split(r"[<>=;\[ ]", r, maxsplit=1)[0].lower() for r in v} for k, v in extras.items()}
    assert {"jupyterlab", "ipywidgets", "ipykernel", "papermill"} <= names["notebooks"]
    assert {"pytest", "nbval", "medpy", "monai", "ruff"} <= names["dev"] and "ctslib" in names["dev"]
    assert not names["notebooks"] & {"pytest", "nbval", "playwright", "medpy", "monai", "ruff"}
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert pip == ['-e ".[notebooks]"'] or pip == ["-e .[notebooks]"], pip
    listed = " ".join(d for d in env["dependencies"] if isinstance(d, str))
    assert not any(tool in listed for tool in ("playwright", "pytest", "nbval"))


def test_ci_registers_its_kernel_in_its_venv_and_runs_the_pre_commit_checks():
    ci = (REPO / ".ci" / "run").read_text()
    assert "ipykernel install --sys-prefix" in ci and "--user" not in ci
    hooks = yaml.safe_load((REPO / ".pre-commit-config.yaml").read_text())["repos"]
    assert [r["repo"] for r in hooks] == ["local"], "CI cannot fetch hook repositories: local hooks only"
    for hook in hooks[0]["hooks"]:
        assert hook["entry"].split(" --")[0] in ci, f"CI does not run the pre-commit hook {hook['id']}"
    assert not any("nbstripout" in h["id"] for h in hooks[0]["hooks"])     # notebooks are committed executed


def test_downloads_under_data_are_ignored_and_the_sample_is_not():
    def ignored(path: str) -> bool:
        proc = subprocess.run(["git", "-C", str(REPO), "check-ignore", "--no-index", "-q", path])
        assert proc.returncode in (0, 1), "git check-ignore failed"
        return proc.returncode == 0
    assert ignored("data/lgg/slices.csv") and ignored("data/.cts-download/x.zip") and ignored("data/full/ddti/a.png")
    tracked = subprocess.run(["git", "-C", str(REPO), "ls-files", "data"], capture_output=True, text=True,
                             check=True).stdout.split()
    assert tracked and not [p for p in tracked if ignored(p)], "a committed file under data/ is git-ignored"
