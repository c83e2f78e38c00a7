"""cloudbuild.yaml runs what `make test` runs, then stages every function and deploys infra/."""

from __future__ import annotations

from typing import Any

import yaml

from tests.infra import codefacts


def steps() -> dict[str, Any]:
    build = yaml.safe_load((codefacts.ROOT / "cloudbuild.yaml").read_text())
    return {step["id"]: step for step in build["steps"]}


def script(step: dict[str, Any]) -> str:
    return " ".join(str(arg) for arg in step.get("args", []))


def test_build_lints_type_checks_tests_stages_and_deploys_in_that_order() -> None:
    order = list(steps())
    for earlier, later in [
        ("lint", "test"),
        ("typecheck", "test"),
        ("test", "stage"),
        ("stage", "deploy"),
    ]:
        assert order.index(earlier) < order.index(later)
    assert "make" in steps()["lint"]["entrypoint"] and "lint" in script(steps()["lint"])
    assert "typecheck" in script(steps()["typecheck"])
    test = script(steps()["test"])
    assert "make test" in test
    for emulator in ("pubsub-emulator", "firestore-emulator", "openjdk"):
        assert emulator in test


def test_every_function_folder_is_staged_without_a_hard_coded_list() -> None:
    stage = script(steps()["stage"])
    assert "functions/*/main.py" in stage
    assert "python -m devstack.stage" in stage and "--zip" in stage


def test_deploy_applies_infra_with_the_staged_archives() -> None:
    deploy = script(steps()["deploy"])
    assert "terraform -chdir=infra apply" in deploy
    assert "staged_dir=../build" in deploy
