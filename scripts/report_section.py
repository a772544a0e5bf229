"""The results section of a hand-written report (docs/FUZZING.md, docs/SOAK.md): the text between two
markers is replaced, the text around them kept."""

from __future__ import annotations

from pathlib import Path


def write_section(report: Path, begin: str, end: str, section: str, title: str) -> None:
    """Puts `section` (which holds both markers) in place of the old one, or appends it to the report
    (made with `# title` if missing)."""
    text = report.read_text() if report.exists() else f"# {title}\n"
    if begin in text and end in text:
        text = text[: text.index(begin)] + section + text[text.index(end) + len(end) :]
    else:
        text = text.rstrip() + "\n\n" + section + "\n"
    report.write_text(text)
