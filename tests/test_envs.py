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
    for env in ("hf", "llamacpp", "report"):
        assert (REPO / "envs" / f"{env}.yaml").is_file()
        assert f"envs/{env}.yaml" in rules or f'"{env}"' in rules
