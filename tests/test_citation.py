"""The licence and citation files (LICENSE, CITATION.cff) and the README's citation block that repeats them."""
from __future__ import annotations

import re
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
    assert project["license"] == "MIT" and project["license-files"] == ["LICENSE"]
    text = (REPO / "LICENSE").read_text()
    assert text.startswith("MIT License") and "Permission is hereby granted, free of charge" in text
