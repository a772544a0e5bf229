"""The layout of sql/functions (sql/CONVENTIONS.md, "Layout and apply order"): the files are
applied in the order of their numbers, the numbers are layers, and a file calls only
functions of its own file or of a lower-numbered one. Read from the files' text, no database."""

import re
from pathlib import Path

FUNCTIONS = Path(__file__).resolve().parent.parent / "sql" / "functions"
DEFINITION = re.compile(r"CREATE\s+(?:OR\s+REPLACE\s+)?FUNCTION\s+cards\.(\w+)\s*\(", re.IGNORECASE)
CALL = re.compile(r"\bcards\.(\w+)\s*\(")


def _code(path: Path) -> str:
    """The file without its `--` comments (a comment may name any function)."""
    return "\n".join(line.split("--", 1)[0] for line in path.read_text().splitlines())


def _files(directory: Path) -> list[Path]:
    return sorted(directory.glob("[0-9][0-9]_*.sql"))


def _defined_in(directory: Path) -> dict[str, set[str]]:
    defined: dict[str, set[str]] = {}
    for path in _files(directory):
        for name in DEFINITION.findall(_code(path)):
            defined.setdefault(name, set()).add(path.name)
    return defined


def edges_against_the_numbering(directory: Path = FUNCTIONS) -> list[str]:
    """Each call of a cards function defined only in files numbered after the caller's."""
    defined = _defined_in(directory)
    found = []
    for path in _files(directory):
        for name in sorted(set(CALL.findall(_code(path)))):
            homes = defined.get(name)
            if homes and min(homes) > path.name:  # names start with the number: string order is apply order
                found.append(f"{path.name} calls cards.{name}, defined in {', '.join(sorted(homes))}")
    return found


def test_no_function_file_calls_a_function_of_a_higher_numbered_file():
    assert edges_against_the_numbering() == []


def test_the_layout_check_reports_a_call_into_a_higher_numbered_file(tmp_path):
    (tmp_path / "00_helpers.sql").write_text(
        "CREATE OR REPLACE FUNCTION cards._low() RETURNS int LANGUAGE sql AS $$ SELECT cards._high() $$;\n"
        "-- a comment naming cards._later() is no call\n"
    )
    (tmp_path / "40_later.sql").write_text(
        "CREATE OR REPLACE FUNCTION cards._high() RETURNS int LANGUAGE sql AS $$ SELECT cards._low() $$;\n"
        "CREATE OR REPLACE FUNCTION cards._later() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$;\n"
    )
    assert edges_against_the_numbering(tmp_path) == [
        "00_helpers.sql calls cards._high, defined in 40_later.sql"
    ]


if __name__ == "__main__":
    print("\n".join(edges_against_the_numbering()) or "no edge against the numbering")
