"""The production files: compose parses and has every service, commands match the README.

Docker itself cannot run on the CI machine, so these checks read the files.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker" / "compose.yaml").read_text())
DOCKERFILE = (ROOT / "docker" / "Dockerfile").read_text()
README = (ROOT / "README.md").read_text()


def test_compose_has_the_production_services():
    assert set(COMPOSE["services"]) >= {"db", "redis", "web", "worker", "gpu-worker"}
    assert COMPOSE["services"]["db"]["image"].startswith("postgres:")
    assert COMPOSE["services"]["redis"]["image"].startswith("redis:")


def test_gpu_worker_consumes_inference_queue_with_an_nvidia_device():
    gpu = COMPOSE["services"]["gpu-worker"]
    assert gpu["command"][gpu["command"].index("-Q") + 1] == "inference"
    (device,) = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia"
    assert "gpu" in device["capabilities"]


def test_cpu_worker_does_not_take_inference_tasks():
    worker = COMPOSE["services"]["worker"]
    assert worker["command"][worker["command"].index("-Q") + 1] == "default"


def test_web_runs_a_production_wsgi_server():
    assert COMPOSE["services"]["web"]["command"][0] == "gunicorn"


def test_every_compose_command_is_documented_in_the_readme():
    for name, service in COMPOSE["services"].items():
        if "command" in service and "build" in service:
            assert " ".join(service["command"]) in README, f"{name}'s command is not in README"


def test_dockerfile_runs_as_non_root_and_defaults_to_the_web_command():
    users = re.findall(r"^USER (\S+)", DOCKERFILE, flags=re.MULTILINE)
    assert users and users[-1] not in {"root", "0"}
    (cmd,) = re.findall(r"^CMD (\[.*\])$", DOCKERFILE, flags=re.MULTILINE)
    assert json.loads(cmd) == COMPOSE["services"]["web"]["command"]
    assert DOCKERFILE.count("FROM ") >= 2, "multi-stage build"


def test_every_setting_read_from_the_environment_is_in_env_example():
    settings_source = (ROOT / "studyplatform" / "settings.py").read_text()
    read = set(re.findall(r'env_\w+\(\s*"([A-Z_]+)"', settings_source))
    example = (ROOT / "docker" / ".env.example").read_text()
    listed = set(re.findall(r"^([A-Z_]+)=", example, flags=re.MULTILINE))
    assert read, "no settings found: the pattern no longer matches settings.py"
    assert read <= listed, f"missing from docker/.env.example: {sorted(read - listed)}"


def test_only_the_proxy_publishes_ports_and_it_is_the_trusted_proxy():
    published = {name for name, service in COMPOSE["services"].items() if service.get("ports")}
    assert published == {"proxy"}
    proxy = COMPOSE["services"]["proxy"]
    address = proxy["networks"]["default"]["ipv4_address"]
    example = (ROOT / "docker" / ".env.example").read_text()
    (trusted,) = re.findall(r"^TRUSTED_PROXIES=(.*)$", example, flags=re.MULTILINE)
    assert trusted.split(",") == [address]
    caddyfile = (ROOT / "docker" / "Caddyfile").read_text()
    assert "reverse_proxy web:8000" in caddyfile
