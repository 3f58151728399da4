"""The command's last line of defence: an interrupt or a reader that leaves gives one line and a
documented exit code, never a traceback (typer 0.29 moved click's Abort, which once turned every
Ctrl-C into an AttributeError traceback)."""

from __future__ import annotations

import pytest
import typer

import reporter.cli as cli


@pytest.mark.parametrize("exc", [typer.Abort(), KeyboardInterrupt()])
def test_interrupt_exits_130_with_one_line(monkeypatch, capsys, exc):
    def interrupted(**_kwargs):
        raise exc

    monkeypatch.setattr(cli, "app", interrupted)
    with pytest.raises(SystemExit) as done:
        cli.main(["report", "x"])
    assert done.value.code == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["spine-report: error: interrupted"]


def test_reader_leaving_is_not_an_error(monkeypatch, capsys):
    def pipe_closed(**_kwargs):
        raise BrokenPipeError

    monkeypatch.setattr(cli, "app", pipe_closed)
    monkeypatch.setattr(cli, "_silence_stdout", lambda: None)
    with pytest.raises(SystemExit) as done:
        cli.main(["--help"])
    assert done.value.code == 0
    assert "Traceback" not in capsys.readouterr().err
