"""CLI surface: every subcommand's --help renders, bad input exits 2 with one line, default run folders never collide."""
from __future__ import annotations

import pytest

from fsgen_hub.cli import build_parser, main
from fsgen_hub.training.arguments import TrainingArguments
from fsgen_hub.training.trainer import default_output_dir


def subcommands():
    parser = build_parser()
    action = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    return sorted(action.choices)


@pytest.mark.parametrize("command", subcommands())
def test_every_subcommand_help_renders(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    assert "usage:" in capsys.readouterr().out


def test_unknown_method_is_a_one_line_error(capsys, tmp_path):
    code = main(["adapt", "--method", "dapp", "--output-dir", str(tmp_path / "x")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("error: unknown method 'dapp'") and "Did you mean dap" in err
    assert len(err.splitlines()) == 1 and not (tmp_path / "x").exists()


def test_default_output_dir_takes_the_next_free_name_and_resume_the_newest(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = TrainingArguments(method="dap")
    assert default_output_dir(args) == "runs/dap-emoji"
    (tmp_path / "runs" / "dap-emoji").mkdir(parents=True)
    assert default_output_dir(args) == "runs/dap-emoji-2"
    (tmp_path / "runs" / "dap-emoji-2").mkdir()
    assert default_output_dir(TrainingArguments(method="dap", resume="latest")) == "runs/dap-emoji-2"
    assert default_output_dir(args) == "runs/dap-emoji-3"
