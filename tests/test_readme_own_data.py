"""The README's "Your own data" walk-through, followed as written: its YAML goes into the file
`retrainer init` writes, its commands run in order, on ELEC2 saved as CSV files with local
times without an offset (Australia/Sydney, where ELEC2 was recorded)."""

import re
import shlex
from pathlib import Path

import yaml
from click.testing import CliRunner

from retrainer.cli import main
from retrainer.project import Project
from tests.conftest import DATABASE_URL, store_url

README = Path(__file__).parent.parent / "README.md"


def section() -> str:
    text = README.read_text(encoding="utf-8")
    return text.split("## Your own data", 1)[1].split("\n## ", 1)[0]


def blocks(kind: str) -> list[str]:
    return re.findall(rf"```{kind}\n(.*?)```", section(), flags=re.S)


def test_the_walk_through_leads_to_a_first_retrain(tmp_path, elec, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for folder in ("data/batches", "data/labels"):
        (tmp_path / folder).mkdir(parents=True)
    frame = elec.rename(columns={"timestamp": "event_time", "target": "label"})
    frame["event_time"] = frame["event_time"].dt.tz_convert("Australia/Sydney").dt.tz_localize(None)
    for week in range(6):
        part = frame.iloc[week * 336 : (week + 1) * 336]
        name = f"2024-{week + 1:02d}-01.csv"
        late = week >= 4  # the last two weeks come without labels; their labels come later
        part.assign(label=None if late else part["label"]).to_csv(
            tmp_path / "data" / "batches" / name, index=False
        )
        if late:
            part[["id", "label"]].to_csv(tmp_path / "data" / "labels" / name, index=False)

    (settings,) = [yaml.safe_load(b) for b in blocks("yaml")]
    settings["data"]["timezone"] = "Australia/Sydney"  # the README's example zone is Zurich
    commands = [shlex.split(line.split("#")[0]) for line in blocks("bash")[0].splitlines()]
    assert commands[0] == ["retrainer", "init"]
    runner = CliRunner()
    for command in commands:
        result = runner.invoke(main, command[1:])
        assert result.exit_code == 0, (command, result.output)
        if command == ["retrainer", "init"]:  # then edit the data: section as the README says
            written = yaml.safe_load(Path("retrainer.yaml").read_text())
            written["data"].update(settings["data"])
            if DATABASE_URL:
                written["store"]["url"] = store_url(tmp_path)
            Path("retrainer.yaml").write_text(yaml.safe_dump(written))
    assert "champion: v1" in result.output  # the last command: retrainer status
    project = Project.from_yaml("retrainer.yaml")
    assert project.champion.version == 1
    assert project.champion.lineage["window"]["rows"] >= 100
