from dataclasses import dataclass, field
from pathlib import Path

import pytest

from lem.config import read_toml, resolve, section, to_dict
from lem.errors import LemError


@dataclass
class Demo:
    iters: int = 200
    learning_rate: float = 1e-5
    seed: int | None = 0
    data: Path = Path("training")
    layers: list = field(default_factory=lambda: [1, 2])


def test_flags_override_file_override_defaults(tmp_path):
    f = tmp_path / "lem.toml"
    f.write_text("[train]\niters = 50\nlearning_rate = 2\n")
    s = resolve(Demo, section(f, "train"), {"iters": 7, "seed": None}, where=str(f))
    assert s.iters == 7 and s.learning_rate == 2.0 and s.seed == 0
    assert to_dict(s)["data"] == "training"


def test_seed_zero_is_kept():
    assert resolve(Demo, {}, {"seed": 0}).seed == 0


def test_unknown_key_and_bad_type_are_one_line_errors(tmp_path):
    with pytest.raises(LemError, match="unknown setting 'iter'"):
        resolve(Demo, {"iter": 5}, where="lem.toml [train]")
    with pytest.raises(LemError, match="iters: expected int"):
        resolve(Demo, {"iters": "many"}, where="lem.toml [train]")
    with pytest.raises(LemError, match="iters: expected int"):
        resolve(Demo, {"iters": True})


def test_bad_toml_and_missing_file(tmp_path):
    bad = tmp_path / "lem.toml"
    bad.write_text("[train\n")
    with pytest.raises(LemError, match="invalid TOML"):
        read_toml(bad)
    with pytest.raises(LemError, match="not found"):
        read_toml(tmp_path / "none.toml")
