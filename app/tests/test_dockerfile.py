"""The Dockerfile's promises, read from the file (no Docker engine here to build it)."""

from pathlib import Path

DOCKERFILE = (Path(__file__).resolve().parents[1] / "Dockerfile").read_text()
INSTRUCTIONS = [
    line.split(None, 1)
    for line in DOCKERFILE.splitlines()
    if line and not line.startswith("#") and not line.startswith(" ")
]


def instruction(name):
    return [rest for first, *rest in INSTRUCTIONS if first == name]


def test_runs_as_the_non_root_user_the_task_definition_names():
    assert instruction("USER") == [["10001:10001"]]


def test_slim_base_pinned_to_a_version():
    (base,) = instruction("FROM")
    assert base[0].startswith("public.ecr.aws/docker/library/python:3.12-slim")


def test_nothing_is_written_at_run_time():
    assert "PYTHONDONTWRITEBYTECODE=1" in DOCKERFILE
    assert "compileall" in DOCKERFILE


def test_the_pipeline_build_arg_reaches_the_app():
    assert instruction("ARG") == [["APP_VERSION=dev"]]
    assert "APP_VERSION=${APP_VERSION}" in DOCKERFILE


def test_health_check_uses_the_module_the_task_definition_runs():
    assert 'CMD ["python", "-m", "service.healthcheck"]' in DOCKERFILE
