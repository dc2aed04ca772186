"""Every `docs/NAME.md §N` cited in the code, tests, benchmarks and README names a section that exists."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CITATION = re.compile(r"docs/([\w-]+\.md) (§[\d.]*\d(?:(?:, §|-)[\d.]*\d)*)")
SECTION = re.compile(r"(\d+(?:\.\d+)*)")
HEADING = re.compile(r"^#+\s+(\d+(?:\.\d+)*)\.?\s", re.M)


def citations() -> list[tuple[Path, str, str]]:
    files = [*ROOT.glob("src/wsrl/**/*.py"), *ROOT.glob("tests/*.py"), *ROOT.glob("benchmarks/*.*"),
             *ROOT.glob("docs/*.md"), ROOT / "README.md"]
    found = []
    for path in files:
        for doc, sections in CITATION.findall(path.read_text()):
            found += [(path, doc, section) for section in SECTION.findall(sections)]
    return found


def test_every_cited_docs_section_exists():
    cited = citations()
    assert len(cited) > 30  # the code cites the docs throughout
    headings = {doc.name: set(HEADING.findall(doc.read_text())) for doc in (ROOT / "docs").glob("*.md")}
    missing = [(str(path.relative_to(ROOT)), doc, section) for path, doc, section in cited
               if section not in headings.get(doc, set())]
    assert not missing, missing
