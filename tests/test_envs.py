"""The conda environments (envs/*.yaml) pin versions that pyproject.toml allows."""

import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[1]


def _project_requirements() -> dict[str, Requirement]:
    meta = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    reqs = [Requirement(r) for r in meta["dependencies"]]
    return {r.name.lower().replace("_", "-"): r for r in reqs}


def _env_pins(path: Path) -> dict[str, str]:
    deps = yaml.safe_load(path.read_text())["dependencies"]
    pins = {}
    for dep in deps:
        if isinstance(dep, dict):
            for line in dep.get("pip", []):
                name, _, version = line.partition("==")
                pins[name.strip().lower().replace("_", "-")] = version.strip()
    return pins


@pytest.mark.parametrize("env", sorted((REPO / "envs").glob("*.yaml")), ids=lambda p: p.stem)
def test_env_pins_satisfy_the_project_ranges(env):
    project = _project_requirements()
    pins = _env_pins(env)
    assert pins, f"{env.name} pins nothing"
    for name, version in pins.items():
        assert version, f"{env.name}: {name} is not pinned to one version"
        if name in project:
            assert project[name].specifier.contains(version, prereleases=True), (
                f"{env.name}: {name}=={version} is outside pyproject's {project[name].specifier}"
            )


def test_every_rule_environment_exists():
    rules = "".join(p.read_text() for p in (REPO / "workflow" / "rules").glob("*.smk"))
    for env in ("hf", "llamacpp", "onnx", "report"):
        assert (REPO / "envs" / f"{env}.yaml").is_file()
        assert f"envs/{env}.yaml" in rules or f'"{env}"' in rules


def _rule_environments() -> dict[str, set[str]]:
    """Each rule's environment(s), from its conda directive; get_conda_env picks hf, llamacpp
    or onnx."""
    import re

    envs = {}
    for smk in (REPO / "workflow" / "rules").glob("*.smk"):
        for rule, body in re.findall(r"^rule (\w+):\n((?:    .*\n|\n)*)", smk.read_text(), re.M):
            conda = re.search(r"conda:\n\s+(\S+)", body)
            if conda is None:
                continue
            value = conda.group(1)
            envs[rule] = ({"hf", "llamacpp", "onnx"} if value == "get_conda_env"
                          else {Path(value.strip('"')).stem})
    return envs


def test_readme_names_each_rules_environment():
    documented: dict[str, set[str]] = {}
    for line in (REPO / "README.md").read_text().splitlines():
        if line.startswith("| `envs/"):
            env_cell, rules_cell = line.split("|")[1:3]
            env = Path(env_cell.split("`")[1]).stem
            for rule in rules_cell.split("`")[1::2]:
                if not rule.isidentifier():
                    continue  # a precision pattern such as gguf-*
                documented.setdefault(rule, set()).add(env)
    rules = _rule_environments()
    assert len(rules) >= 13
    assert documented == rules
