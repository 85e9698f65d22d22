"""The setup and deploy scripts (syntax + dry runs) and the container files that call them."""

from __future__ import annotations

import os
import subprocess

import pytest
import yaml

from core.settings import PROJECT_ROOT

SETUP = PROJECT_ROOT / "scripts" / "setup.sh"
DEPLOY = PROJECT_ROOT / "scripts" / "deploy.sh"


def bash(script, *args, env=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(script), *args], capture_output=True, text=True, timeout=60,
        env={**os.environ, **(env or {})}, cwd=PROJECT_ROOT,
    )


def test_scripts_parse():
    for script in (SETUP, DEPLOY):
        result = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
        assert result.returncode == 0, result.stderr


def test_setup_uses_local_indexes_only_when_present(tmp_path):
    wheels, index = tmp_path / "wheels", tmp_path / "simple"
    env = {"SETUP_DRY_RUN": "1", "ONCOGRAPH_VENV": str(tmp_path / "venv"),
           "ONCOGRAPH_WHEELS_DIR": str(wheels), "ONCOGRAPH_PYPI_DIR": str(index)}
    bare = bash(SETUP, env=env)
    assert bare.returncode == 0, bare.stderr
    lines = bare.stdout.splitlines()
    assert lines[0] == f"+ python3.11 -m venv {tmp_path / 'venv'}"
    install = next(line for line in lines if " pip install --python " in line)
    assert "--find-links" not in install and "--index-strategy" not in install
    assert install.endswith("-e .[dev]")
    weights = "-m tools.weights prepare qwen2.5-1.5b qwen2.5-0.5b minilm"
    assert lines[-2] == f"+ {tmp_path / 'venv'}/bin/python {weights}"

    wheels.mkdir()
    index.mkdir()
    local = bash(SETUP, env={**env, "ONCOGRAPH_WEIGHTS": "none", "ONCOGRAPH_EXTRAS": ""})
    install = next(line for line in local.stdout.splitlines() if " pip install --python " in line)
    assert f"--find-links {wheels}" in install
    assert f"--extra-index-url file://{index}" in install
    assert "--index-strategy unsafe-best-match" in install and install.endswith("-e .")
    assert "tools.weights" not in local.stdout


def test_setup_skips_the_venv_when_it_exists(tmp_path):
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    for tool in ("python", "uv"):
        (venv / "bin" / tool).touch(mode=0o755)
    out = bash(SETUP, env={"SETUP_DRY_RUN": "1", "ONCOGRAPH_VENV": str(venv),
                           "ONCOGRAPH_WEIGHTS": "qwen2.5-0.5b"}).stdout
    assert "-m venv" not in out and "install --quiet" not in out
    assert "tools.weights prepare qwen2.5-0.5b\n" in out


def test_deploy_dry_runs_print_and_run_nothing(tmp_path):
    env = {"PATH": f"{tmp_path}:/usr/bin:/bin", "HF_TOKEN": ""}  # no gcloud, no token needed
    hf = bash(DEPLOY, "--dry-run", "hf", "--space", "me/oncograph", env=env)
    assert hf.returncode == 0, hf.stderr
    assert "git archive --format=tar HEAD" in hf.stdout
    assert "space_sdk=\"docker\"" in hf.stdout and "me/oncograph" in hf.stdout
    run = bash(DEPLOY, "--dry-run", "cloudrun", "--project", "demo", "--region", "us-east1",
               env=env)
    assert run.returncode == 0, run.stderr
    assert "gcloud builds submit" in run.stdout
    image = "us-east1-docker.pkg.dev/demo/oncograph/"
    assert f"gcloud run deploy oncograph --image {image}" in run.stdout
    assert "--cpu 2" in run.stdout and "--no-allow-unauthenticated" in run.stdout
    usage = bash(DEPLOY, "--dry-run", "cloudrun", env=env)
    assert usage.returncode == 2 and "--project" in usage.stderr


def test_dockerfile_builds_with_the_setup_script():
    text = (PROJECT_ROOT / "Dockerfile").read_text()
    assert text.startswith("#") and "FROM python:3.11-slim" in text
    assert 'RUN ONCOGRAPH_EXTRAS="" ONCOGRAPH_FETCH_VOCAB=1' in text
    assert "bash scripts/setup.sh" in text
    assert "\nUSER app\n" in text and "HEALTHCHECK" in text and "/health" in text
    assert "graph.api:app" in text
    ignored = (PROJECT_ROOT / ".dockerignore").read_text().splitlines()
    assert ".venv" in ignored and ".git" in ignored


def test_compose_has_api_redis_and_workers():
    compose = yaml.safe_load((PROJECT_ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert set(services) == {"api", "redis", "worker"}
    assert services["worker"]["command"][2:4] == ["graph.stream", "work"]
    assert services["api"]["environment"]["ONCOGRAPH_REDIS_URL"] == "redis://redis:6379/0"
    assert "--appendfsync" in services["redis"]["command"]


@pytest.mark.parametrize("has_apt", [True, False])
def test_setup_provides_redis_or_says_how(tmp_path, has_apt):
    """Without redis-server the stream tests cannot run: setup installs it as root with apt,
    otherwise it prints the one command that does."""
    import shutil

    bin_dir = tmp_path / "bin"  # a PATH with the script's tools but no redis-server
    bin_dir.mkdir()
    for tool in ("dirname", "id", "bash"):
        (bin_dir / tool).symlink_to(shutil.which(tool))
    if has_apt:
        (bin_dir / "apt-get").symlink_to(shutil.which("true"))
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    for tool in ("python", "uv"):
        (venv / "bin" / tool).touch(mode=0o755)
    out = bash(SETUP, env={"SETUP_DRY_RUN": "1", "ONCOGRAPH_VENV": str(venv),
                           "ONCOGRAPH_WEIGHTS": "none", "PATH": str(bin_dir)})
    assert out.returncode == 0, out.stderr
    if has_apt and os.getuid() == 0:
        assert "+ apt-get install -y -qq redis-server" in out.stdout
    else:
        assert "apt-get install redis-server" in out.stderr and "+ apt-get" not in out.stdout
