"""The files users and images rely on stay consistent with the code."""

from __future__ import annotations

import importlib
import re
import shlex
from pathlib import Path

from backend.src.core.config import load_engine_config
from backend.src.core.settings import REPO_ROOT, Settings


def test_example_engine_config_is_valid() -> None:
    symbols = ["BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT"]
    cfg = load_engine_config(REPO_ROOT / "backend" / "engines.example.yaml", symbols)
    assert cfg["ETHUSDT"].strategy.name == "momentum" and cfg["XRPUSDT"].size_usd == 1000


def test_dockerfile_copies_existing_paths_and_runs_an_importable_module() -> None:
    text = (REPO_ROOT / "Dockerfile").read_text()
    for line in re.findall(r"^COPY (?!--from)(.*)$", text, flags=re.M):
        parts = [p for p in shlex.split(line) if not p.startswith("--")]
        for src in parts[:-1]:
            assert (REPO_ROOT / src).exists(), f"Dockerfile copies missing {src}"
    module = re.search(r'ENTRYPOINT \["python", "-m", "([\w.]+)"\]', text)
    assert module is not None
    importlib.import_module(module.group(1))
    # two targets: the runtime installs its closed package list without resolving, the trainer everything
    stages = dict(re.findall(r"^FROM \S+ AS ([\w-]+)\n(.*?)(?=^FROM |\Z)", text, flags=re.M | re.S))
    assert {"runtime", "trainer", "runtime-deps", "trainer-deps"} <= set(stages)
    assert "--no-deps" in stages["runtime-deps"] and "-r requirements-runtime.txt" in stages["runtime-deps"]
    assert "-r requirements.txt" in stages["trainer-deps"] and "prune_install.py /install" in stages["trainer-deps"]
    assert "--from=runtime-deps" in stages["runtime"] and "--from=trainer-deps" in stages["trainer"]
    assert re.findall(r"^FROM .* AS (\w+)", text, flags=re.M)[-1] == "runtime", "plain `docker build` = runtime"
    script = re.search(r'ENTRYPOINT \["(backend/scripts/[\w.]+\.sh)"\]', stages["trainer"])
    assert script is not None and (REPO_ROOT / script.group(1)).stat().st_mode & 0o111


def test_readme_opens_with_the_two_commands_and_ci_runs_the_test_one() -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    block = readme.split("```bash", 1)[1].split("```", 1)[0]
    commands = [x for x in block.splitlines() if x and not x.startswith("#")]
    assert len(commands) == 2
    assert "backend.src.engine_manager" in commands[0]
    assert "pytest" in commands[1]
    assert commands[1] in (REPO_ROOT / ".ci" / "run").read_text()


def test_data_dir_is_ignored_but_kept() -> None:
    ignore = (REPO_ROOT / ".gitignore").read_text()
    assert "backend/data/*" in ignore and (Path(REPO_ROOT) / "backend" / "data" / ".gitkeep").exists()


def _module_of(argv: list[str]) -> str | None:
    if "-m" in argv:
        return argv[argv.index("-m") + 1]
    if argv and argv[0] == "uvicorn":
        return argv[1].split(":")[0]
    return None


def test_compose_services_run_modules_that_exist() -> None:
    import yaml

    compose = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"redis", "clickhouse", "manager", "api", "workers", "trainer"} <= set(services)
    assert services["manager"]["build"]["target"] == "runtime" and services["trainer"]["build"]["target"] == "trainer"
    assert all(svc["image"] == services["manager"]["image"] for svc in (services["api"], services["workers"]))
    dockerfile = (REPO_ROOT / "Dockerfile").read_text()
    for name, svc in services.items():
        if name in ("redis", "clickhouse"):
            continue
        for argv in (svc.get("entrypoint"), (svc.get("healthcheck") or {}).get("test", [])[1:]):
            module = _module_of(list(argv or []))
            if module:
                importlib.import_module(module)
        for vol in svc.get("volumes", []):
            target = vol.split(":")[1]
            assert target.startswith("/app/backend/data"), f"{name}: unexpected volume {vol}"
        if "command" in svc:  # manager: the CLI must accept these arguments
            from backend.src.engine_manager import build_parser

            args = [a.replace("${LEVIBOT_SYMBOLS:-BTCUSDT,ETHUSDT,SOLUSDT}", "BTCUSDT") for a in svc["command"]]
            build_parser().parse_args(args)
    check = re.search(r'HEALTHCHECK .*CMD \[(.*)\]', dockerfile)
    assert check is not None
    importlib.import_module(_module_of([x.strip(' "') for x in check.group(1).split(",")]) or "")


def test_workflows_pin_actions_and_run_the_ci_script() -> None:
    import yaml

    for name in ("ci.yml", "deploy.yml"):
        text = (REPO_ROOT / ".github" / "workflows" / name).read_text()
        wf = yaml.safe_load(text)
        uses = re.findall(r"uses: ([\w./-]+)@(\S+)", text)
        assert uses and all(re.fullmatch(r"v\d+\.\d+\.\d+", ver) for _a, ver in uses), uses
        assert ".ci/run" in text
        assert wf["jobs"]["test"]["steps"][1]["with"]["python-version"] == "3.11"
    deploy = yaml.safe_load((REPO_ROOT / ".github" / "workflows" / "deploy.yml").read_text())
    assert deploy["jobs"]["build"]["needs"] == "test" and deploy["jobs"]["deploy"]["needs"] == "build"


def test_crontab_lines_point_at_real_paths() -> None:
    text = (REPO_ROOT / "backend" / "scripts" / "crontab").read_text()
    assert "0 3 * * * " in text and "0 2 * * 1 " in text
    for path in re.findall(r"(backend/scripts/[\w.]+\.sh)", text):
        assert (REPO_ROOT / path).exists() and (REPO_ROOT / path).stat().st_mode & 0o111, path
    for module in re.findall(r"-m ([\w.]+)", text):
        importlib.import_module(module)


def test_cli_path_options_resolve_at_parse_time() -> None:
    """Every path option is made absolute when parsed (children and subprocesses run elsewhere)."""
    offenders = [str(p.relative_to(REPO_ROOT)) for p in (REPO_ROOT / "backend").rglob("*.py")
                 if "tests" not in p.parts and "type=Path" in p.read_text()]
    assert offenders == [], f"use type=cli_path: {offenders}"


def test_ci_script_uses_sudo_when_not_root() -> None:
    text = (REPO_ROOT / ".ci" / "run").read_text()
    assert 'SUDO="sudo"' in text and "$SUDO apt-get update" in text and "$SUDO apt-get install" in text


def test_compose_redis_needs_a_password_and_services_get_only_their_secrets() -> None:
    import yaml

    services = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())["services"]
    assert "--requirepass" in services["redis"]["command"]
    secret = ("TOKEN", "SECRET", "KEY", "WEBHOOK")
    got = {name: {k for k in (svc.get("environment") or {}) if any(w in k for w in secret)}
           for name, svc in services.items() if name not in ("redis", "clickhouse")}
    pool = {"LEVIBOT_TELEGRAM_BOT_TOKEN"}
    assert got == {"trainer": set(), "manager": {"LEVIBOT_TELEGRAM_BOT_TOKEN", "LEVIBOT_SLACK_WEBHOOK_URL"},
                   "pool-a": pool, "pool-b": pool, "pool-c": pool,
                   "api": {"LEVIBOT_API_TOKEN"},
                   "workers": {"LEVIBOT_GEMMA_API_KEY", "LEVIBOT_DUNE_API_KEY", "LEVIBOT_NANSEN_API_KEY"}}, got
    assert all(":${LEVIBOT_REDIS_PASSWORD" in svc["environment"]["LEVIBOT_REDIS_URL"]
               for name, svc in services.items() if name not in ("redis", "clickhouse"))
    assert "${LEVIBOT_CLICKHOUSE_PASSWORD" in services["clickhouse"]["environment"]["CLICKHOUSE_PASSWORD"]
    for name in ("manager", "api"):  # the analytics child (in the manager's tree) and the history API
        Settings(clickhouse_url=services[name]["environment"]["LEVIBOT_CLICKHOUSE_URL"].replace(
            "${LEVIBOT_CLICKHOUSE_PASSWORD:?}", "pw"))


def test_tests_mirror_the_package_layout() -> None:
    """``backend/tests/src/<floor>/test_x.py`` tests ``backend/src/<floor>/x.py``'s package."""
    tests_src = REPO_ROOT / "backend" / "tests" / "src"
    for test in tests_src.rglob("test_*.py"):
        package = REPO_ROOT / "backend" / "src" / test.parent.relative_to(tests_src)
        assert (package / "__init__.py").is_file(), f"{test.relative_to(REPO_ROOT)}: no package {package}"


def test_product_modules_stay_small() -> None:
    """One responsibility per module: under 400 lines (tests and fakes excepted)."""
    big = {str(p.relative_to(REPO_ROOT)): n for p in (REPO_ROOT / "backend").rglob("*.py")
           if "tests" not in p.parts and (n := len(p.read_text(encoding="utf-8").splitlines())) >= 400}
    assert big == {}


def test_redis_key_names_are_built_only_in_keys_py() -> None:
    """Every Redis key (and RQ queue/job name) comes from ``core/keys.py``: one place to read them all."""
    built = re.compile(r"\{[\w.]*\b(ns|namespace)\}")
    offenders = [f"{p.relative_to(REPO_ROOT)}:{i}" for p in (REPO_ROOT / "backend").rglob("*.py")
                 if "tests" not in p.parts and "scripts" not in p.parts and p.name != "keys.py"
                 for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1) if built.search(line)]
    assert offenders == []


def test_the_files_scheduled_first_exist() -> None:
    from backend.tests.conftest import LONGEST_FIRST  # noqa: PLC0415

    assert all((REPO_ROOT / "backend" / "tests" / name).is_file() for name in LONGEST_FIRST)
