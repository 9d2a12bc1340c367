"""Lessons: the scenario files in `scenarios/`, listed once at start-up.

Each file is a scenario (see engine/scenario.py) whose `title`, `notes` (the explanation shown
beside the canvas) and `suggest` (the suggested next click) make it a lesson. A file that does not
validate is skipped with its error kept, so one bad file never takes the page down.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from engine.scenario import Scenario, ScenarioError, parse_scenario


@dataclass(frozen=True)
class LessonFile:
    name: str
    title: str
    notes: str
    suggest: str
    scenario: Scenario


def load_lessons(folder: Path) -> tuple[dict[str, LessonFile], dict[str, str]]:
    """({name: lesson}, {name: error}) for every `*.json` in `folder` (an absent folder is empty)."""
    lessons: dict[str, LessonFile] = {}
    errors: dict[str, str] = {}
    if not folder.is_dir():
        return lessons, errors
    for path in sorted(folder.glob("*.json")):
        name = path.stem
        try:
            sc = parse_scenario(path.read_bytes())
        except (ScenarioError, OSError) as e:
            errors[name] = str(e)
            continue
        lessons[name] = LessonFile(name=name, title=sc.title or name.replace("_", " "),
                                   notes=sc.notes or "", suggest=sc.suggest or "", scenario=sc)
    return lessons, errors
