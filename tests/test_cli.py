"""The command line: help, and bad input as one line with exit code 2 and nothing overwritten."""

import pytest

from alignlab.cli import COMMANDS, main


def test_help_lists_every_command(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in COMMANDS:
        assert name in out


def test_command_help_lists_keys(capsys):
    assert main(["pretrain", "--help"]) == 0
    out = capsys.readouterr().out
    assert "--learning_rate float (default: 0.003)" in out and "--preset str {nano, tiny, small}" in out


@pytest.mark.parametrize("argv, message", [
    (["pretrain", "--lerning_rate", "1"], "unknown key 'lerning_rate' (did you mean 'learning_rate'?)"),
    (["pretrain", "--max_steps", "ten"], "--max_steps: expected an integer, got 'ten'"),
    (["pretrain", "--preset", "huge"], "--preset: must be one of nano, tiny, small; got 'huge'"),
    (["eval", "calibration", "--model", "no/such-model"],
     "--model: no such directory no/such-model (alignlab loads models from local directories only"),
    (["frobnicate"], "unknown command 'frobnicate'"),
    (["world"], "'alignlab world' needs a subcommand: sample, stats"),
])
def test_bad_input_exits_2_with_one_line(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_non_empty_output_dir_is_refused_and_kept(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "precious.txt").write_text("keep me")
    assert main(["pretrain", "--output_dir", str(out), "--corpus", "missing.txt"]) == 2
    assert "is not empty; pass --overwrite to replace it or --resume to continue it" in capsys.readouterr().err
    assert (out / "precious.txt").read_text() == "keep me"


def test_config_file_with_unknown_key(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("preset: tiny\nbatch: 3\n")
    assert main(["pretrain", "--config", str(cfg)]) == 2
    assert f"{cfg}: unknown key 'batch'" in capsys.readouterr().err
