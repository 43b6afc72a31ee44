from dataclasses import dataclass

import pytest

from alignlab.config import option, parse_config
from alignlab.errors import UsageError


@dataclass
class Toy:
    learning_rate: float = option(1e-3, "lr")
    steps: int = option(10, "steps")
    quiet: bool = option(False, "quiet")
    loss_type: str = option("sigmoid", "loss", ("sigmoid", "ipo"))
    modules: list[str] = option(["q_proj", "v_proj"], "targets")
    tokenizer: str | None = option(None, "optional dir")


def test_defaults_and_overrides(tmp_path):
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text("learning_rate: 0.5\nsteps: 3\n")
    cfg = parse_config(Toy, ["--config", str(cfg_file), "--steps", "7", "--quiet", "--modules", "a,b"])
    assert cfg == Toy(learning_rate=0.5, steps=7, quiet=True, modules=["a", "b"])
    assert parse_config(Toy, ["--tokenizer", "none"]).tokenizer is None
    assert parse_config(Toy, ["--quiet=false"]).quiet is False


@pytest.mark.parametrize("argv, message", [
    (["--lr", "1"], "command line: unknown key 'lr'; see --help for the allowed keys"),
    (["--step", "1"], "command line: unknown key 'step' (did you mean 'steps'?); see --help for the allowed keys"),
    (["--steps", "1.5"], "--steps: expected an integer, got '1.5'"),
    (["--learning_rate", "fast"], "--learning_rate: expected a number, got 'fast'"),
    (["--quiet", "maybe"], "--quiet: expected true or false, got 'maybe'"),
    (["--loss_type", "hinge"], "--loss_type: must be one of sigmoid, ipo; got 'hinge'"),
    (["steps", "3"], "unexpected argument 'steps'; options are written --key value"),
])
def test_bad_input_is_one_line(argv, message):
    with pytest.raises(UsageError) as e:
        parse_config(Toy, argv)
    assert str(e.value) == message


def test_yaml_float_for_an_integer_key_is_an_error(tmp_path):
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text("steps: 1.5\n")
    with pytest.raises(UsageError, match=r"--steps: expected an integer, got 1.5"):
        parse_config(Toy, ["--config", str(cfg_file)])


def test_unknown_key_in_yaml_names_file(tmp_path):
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text("learning_rat: 0.5\n")
    with pytest.raises(UsageError, match=r"c.yaml: unknown key 'learning_rat' \(did you mean 'learning_rate'\?\)"):
        parse_config(Toy, ["--config", str(cfg_file)])
