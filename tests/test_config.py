from pathlib import Path

import pytest

from ift_select.core.config import flatten, load_params
from ift_select.core.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


def test_repository_params_load():
    params = load_params(REPO / "params.yaml")
    assert set(params.arms) == {"alpagasus", "random", "car", "full"}
    for pair in params.judge.pairs.values():
        assert pair.a in params.arms and pair.b in params.arms


@pytest.mark.parametrize("text, message", [
    ("tau: high\n", "tau: expected a number"),
    ("train: {lrr: 1}\n", "unknown setting .*train.lrr"),
    ("score: {backend: cloud}\n", "score.backend"),
    ("tau: 7\n", "tau = 7.0"),
    ("judge: {pairs: {x: {a: alpagasus, b: nope}}}\narms: {alpagasus: {method: alpagasus}}\n", "nope"),
    ("arms: {a: {method: alpagasus, n1: 5}}\n", "arms.a.n1: not a setting of method 'alpagasus'"),
    ("arms: {r: {method: random}}\n", "arms.r: a random arm needs exactly one of match"),
    ("arms: {r: {method: random, match: ghost}}\n", "arms.r.match: 'ghost' is not a non-random arm"),
    ("arms: {reference: {method: full}}\n", "'reference' is reserved"),
    ("arms: {full: {method: full}}\njudge: {pairs: {x: {a: reference, b: full}}}\n", "put 'reference' on side b"),
])
def test_bad_settings_name_the_setting(tmp_path, text, message):
    path = tmp_path / "params.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_params(path)


def test_flatten():
    assert flatten({"a": {"b": 1, "c": {"d": 2}}, "e": 3}) == {"a.b": 1, "a.c.d": 2, "e": 3}


def test_every_default_of_the_typed_params_is_the_repositorys_params_yaml():
    """A setting left out of a params file (or the CLI run without one) takes the value params.yaml documents."""
    import dataclasses

    import yaml

    from ift_select.core.params import Params

    differ: list[str] = []

    def compare(cls: type, written: dict, path: str) -> None:
        for f in dataclasses.fields(cls):
            if f.name not in written:
                continue
            default = f.default if f.default is not dataclasses.MISSING else (
                f.default_factory() if f.default_factory is not dataclasses.MISSING else None)  # type: ignore[misc]
            value = written[f.name]
            if dataclasses.is_dataclass(default) and isinstance(value, dict):
                compare(type(default), value, f"{path}{f.name}.")
            elif not isinstance(default, dict) and value != default and not (isinstance(default, tuple) and
                                                                             list(default) == value):
                differ.append(f"{path}{f.name}: params.yaml {value!r}, dataclass {default!r}")

    compare(Params, yaml.safe_load((Path(__file__).resolve().parents[1] / "params.yaml").read_text()), "")
    assert not differ, differ
