"""Layering: the core (model, plan, deploy) never imports an SDK; only the adapters and the CLI do."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

from tests.support.events import AGENT_EVENTS, agent_events

AGENT = Path(__file__).resolve().parents[2] / "agent"
CORE = [
    "model.py",
    "reconcile/run.py",
    "reconcile/context.py",
    "reconcile/observe.py",
    "reconcile/plan.py",
    "reconcile/apply.py",
    "reconcile/pulls.py",
    "deploy/journal.py",
    "deploy/replace.py",
    "deploy/gate.py",
    "deploy/recover.py",
    "deploy/hooks.py",
    "config/__init__.py",
    "config/schema.py",
    "config/fields.py",
    "config/load.py",
    "config/watches.py",
    "config/builds.py",
    "choices.py",
    "secret.py",
    "state.py",
    "errors.py",
    "daemon/__init__.py",
    "durations.py",
    "deploy/service.py",
    "reconcile/targets.py",
]
SDKS = ("docker", "aliyunsdkcore", "aliyunsdkcr")


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module.split(".")[0])
    return out


def test_core_modules_never_import_an_sdk() -> None:
    for name in CORE:
        bad = imported_modules(AGENT / name) & set(SDKS)
        assert not bad, f"agent/{name} imports {bad}"


def test_sdk_modules_are_imported_only_by_the_adapters() -> None:
    for path in AGENT.rglob("*.py"):
        rel = path.relative_to(AGENT).as_posix()
        if rel.startswith(("registries/", "runtimes/")):
            continue
        assert not imported_modules(path) & set(SDKS), f"agent/{rel} imports an SDK"


ADAPTERS = {"AliyunRegistry", "AcrRegistry", "OciRegistry", "DockerRuntime"}


def test_only_the_composition_root_constructs_adapters() -> None:
    """agent/app.py builds the registries and the runtime (and so the SDK clients); nothing else does."""
    for path in AGENT.rglob("*.py"):
        rel = path.relative_to(AGENT).as_posix()
        if rel == "app.py" or rel.startswith(("registries/", "runtimes/")):
            continue
        calls = {
            node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", "")
            for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.Call)
        }
        assert not calls & ADAPTERS, f"agent/{rel} constructs {calls & ADAPTERS}: ask agent/app.py"


def test_one_pull_path() -> None:
    """One pull entry, on the target: apply calls `Target.pull`; reconcile/targets.py holds the refused-login
    retry and the platform check; deploy/replace.py the bare pull by digest; whose credentials, pulls.py."""
    owners = {
        "credentials": {"reconcile/pulls.py"},
        "platform_mismatch": {"reconcile/targets.py"},
        "pull": {"reconcile/apply.py", "reconcile/targets.py", "deploy/replace.py"},
    }
    for path in AGENT.rglob("*.py"):
        rel = path.relative_to(AGENT).as_posix()
        if rel.startswith(("registries/", "runtimes/")):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in owners
            ):
                assert rel in owners[node.func.attr], (
                    f"agent/{rel} calls .{node.func.attr}(): go through the target (Target.pull)"
                )


def full_imports(path: Path) -> set[str]:
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
    return out


def test_no_module_imports_the_cli() -> None:
    """The CLI sits on top: the daemon (and everything else) gets what it needs from agent/app.py."""
    for path in AGENT.rglob("*.py"):
        rel = path.relative_to(AGENT).as_posix()
        if rel.startswith("cli/") or rel == "__main__.py":
            continue
        assert not any(m == "agent.cli" or m.startswith("agent.cli.") for m in full_imports(path)), (
            f"agent/{rel} imports agent.cli"
        )


def _agent_imports(path: Path) -> set[str]:
    """The agent modules `path` imports, inside functions too, but not under `if TYPE_CHECKING:`."""
    tree = ast.parse(path.read_text())
    skip = {
        id(n)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for n in ast.walk(node)
    }
    out: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("agent"):
            out |= {f"{node.module}.{a.name}" for a in node.names}
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("agent")}
    return out


def test_no_import_cycles_counting_imports_inside_functions() -> None:
    modules = {}
    for path in AGENT.rglob("*.py"):
        name = ".".join(path.relative_to(AGENT.parent).with_suffix("").parts).removesuffix(".__init__")
        modules[name] = path

    def resolve(name: str) -> str:
        while name not in modules:
            name = name.rpartition(".")[0]
        return name

    graph = {m: {resolve(i) for i in _agent_imports(p)} - {m} for m, p in modules.items()}
    seen: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(m: str, path: list[str]) -> None:
        seen[m] = 1
        for n in sorted(graph[m]):
            assert seen.get(n) != 1, "import cycle: " + " → ".join([*path[path.index(n) :], n])
            if n not in seen:
                visit(n, [*path, n])
        seen[m] = 2

    for m in sorted(graph):
        if m not in seen:
            visit(m, [m])


def test_the_layer_contracts_hold() -> None:
    """import-linter's contracts in pyproject.toml (CI runs `lint-imports` too)."""
    done = subprocess.run([str(Path(sys.executable).parent / "lint-imports"), "--no-cache"],
                          capture_output=True, text=True, cwd=AGENT.parent, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:]
    assert "0 broken" in done.stdout


def test_build_context_makes_only_the_registries_the_watches_use(tmp_path: Path) -> None:
    from agent.app import REGISTRIES, build_context
    from agent.config import parse
    from agent.registries.oci import OciRegistry

    assert set(REGISTRIES) == {"aliyun", "registry"}
    watch = {"container": "web", "image": "127.0.0.1:5000/ns/web:latest", "source": "registry"}
    ctx = build_context(parse({"agent": {"state_dir": str(tmp_path)}, "watch": [watch]}, {}))
    assert set(ctx.registries) == {"registry"} and isinstance(ctx.registries["registry"], OciRegistry)


def test_status_and_check_discover_with_the_sources_a_pass_asks(tmp_path: Path) -> None:
    """app.py alone decides which registries a pass asks; `check`/`status` discovery accepts exactly those."""
    from agent import app
    from agent.config import parse
    from tests.support.fakes import FakeRuntime

    rt = FakeRuntime()
    rt.add("acr", "sha256:" + "a" * 64, (), labels={"cr-agent.enable": "true", "cr-agent.source": "aliyun"})
    rt.containers[next(iter(rt.containers))].image = "registry.cn-hangzhou.aliyuncs.com/ns/web:latest"
    table = {"agent": {"state_dir": str(tmp_path), "discover": "labels"}}
    keys = {"ALIYUN_ACCESS_KEY_ID": "i", "ALIYUN_ACCESS_KEY_SECRET": "s"}
    for env, sources in (({}, ["registry"]), (keys, ["aliyun", "registry"])):
        cfg = parse(table, env)
        assert app.sources(cfg) == sorted(app.build_context(cfg).registries) == sources
        found = app.discovered(cfg, rt)
        assert [w.container for w in found.watches] == (["acr"] if "aliyun" in sources else [])
        assert [r.container for r in found.failed] == ([] if "aliyun" in sources else ["acr"])
    assert "access_key" not in (AGENT / "cli" / "commands.py").read_text(), (
        "cli.py decides which registries: ask app.py"
    )


# About 400 lines at most. Split on other branches of issue 10: the lead empties this set as they merge.
MAX_MODULE_LINES = 410
SPLIT_ELSEWHERE: set[str] = set()


def test_no_module_in_agent_is_over_about_400_lines() -> None:
    sizes = {p.relative_to(AGENT).as_posix(): len(p.read_text().splitlines()) for p in AGENT.rglob("*.py")}
    over = {rel: n for rel, n in sizes.items() if n > MAX_MODULE_LINES and rel not in SPLIT_ELSEWHERE}
    assert not over, f"split these by what their parts do: {over}"


# `agent once` from cron: the modules a quiet pass imports (437 on CPython 3.11 when this was written:
# the docker SDK with requests/urllib3 is most of it). A count, not a time: the machine may be loaded.
ONCE_MODULE_BUDGET = 520
# the credential chain (with aiohttp and APScheduler) only when no static key is given
CHAIN = ("alibabacloud_credentials", "aiohttp", "Tea", "apscheduler")
NOT_ON_THE_ONCE_PATH = ("apprise", "prometheus_client", "h11", "agent.webhook", "agent.notify.send",
                        "agent.metrics", "aliyunsdkcore", "aliyunsdkcr", "apscheduler",
                        "agent.notify.heartbeat", "semantic_version", *CHAIN)  # fmt: skip
REGISTRY_WATCH = 'image = "127.0.0.1:5000/crt-nothing/none:latest"\nsource = "registry"\n'
# an ACR watch whose API is a closed loopback port: the pass fails fast, after the imports it needs
ACR_WATCH = ('image = "registry.cn-hangzhou.aliyuncs.com/crt-nothing/none:latest"\n'
             '[aliyun]\nendpoint = "http://127.0.0.1:9"\nretries = 0\ntimeout = "1s"\n')  # fmt: skip


def once_imports(tmp_path: Path, *args: str, watch: str = REGISTRY_WATCH,
                 env: dict[str, str] | None = None) -> tuple[list[tuple[int, int, str]], str]:  # fmt: skip
    """`python -X importtime -m agent once --log-json` on a config with nothing to do.

    Returns (self us, cumulative us, name) per import, and the log lines.
    """
    config = tmp_path / "agent.toml"
    config.write_text(
        f'[agent]\nstate_dir = "{tmp_path}/state"\n'
        f'[[watch]]\ncontainer = "crt-{uuid.uuid4().hex[:8]}-missing"\n' + watch
    )
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "agent", "once", "--log-json", "-c", str(config), *args],
        capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env,
    )  # fmt: skip
    rows, logged = [], []
    for line in done.stderr.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \| (.*)$", line)
        if m:
            rows.append((int(m[1]), int(m[2]), m[3]))
        else:
            logged.append(line)
    assert rows, f"no -X importtime output: {done.stderr[-2000:]}"
    return rows, "\n".join(logged)


def top_importers(rows: list[tuple[int, int, str]], n: int = 15) -> str:
    """The heaviest imports by cumulative time, each with how many modules it pulled in."""
    counts: list[tuple[int, str, int]] = []
    for i, (_, cumulative, name) in enumerate(rows):
        depth = len(name) - len(name.lstrip())
        below = 0  # importtime prints a module after the ones it imported, deeper-indented
        for _, _, child in reversed(rows[:i]):
            if len(child) - len(child.lstrip()) <= depth:
                break
            below += 1
        counts.append((cumulative, name.strip(), below))
    counts.sort(reverse=True)
    return "\n".join(f"{us / 1000:8.1f} ms {mods:4d} modules  {name}" for us, name, mods in counts[:n])


def test_agent_once_imports_only_what_a_quiet_pass_uses(tmp_path: Path) -> None:
    rows, logged = once_imports(tmp_path)
    names = {name.strip() for _, _, name in rows}
    unwanted = sorted(n for n in names if n.split(".")[0] in NOT_ON_THE_ONCE_PATH or n in NOT_ON_THE_ONCE_PATH
                      or n.startswith("agent.webhook"))  # fmt: skip
    assert not unwanted, f"`agent once` imports {unwanted}; top importers:\n{top_importers(rows)}"
    assert len(rows) <= ONCE_MODULE_BUDGET, (
        f"`agent once` imports {len(rows)} modules (budget {ONCE_MODULE_BUDGET}); top importers:\n"
        f"{top_importers(rows)}"
    )
    # the same run's --log-json lines, read as bench/ reads them
    (done,) = agent_events(logged, "pass.done")
    assert done["checked"] == 1 and done["seconds"] >= 0


def _acr_env(tmp_path: Path, **keys: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ALIYUN_", "ALIBABA_CLOUD_"))}
    return {**env, "HOME": str(tmp_path), "ALIBABA_CLOUD_ECS_METADATA_DISABLED": "true", **keys}


def test_a_static_key_pass_over_acr_never_imports_the_credential_chain(tmp_path: Path) -> None:
    env = _acr_env(
        tmp_path, ALIBABA_CLOUD_ACCESS_KEY_ID="LTAIid", ALIBABA_CLOUD_ACCESS_KEY_SECRET="s3cret-value"
    )
    rows, logged = once_imports(tmp_path, watch=ACR_WATCH, env=env)
    names = {name.strip() for _, _, name in rows}
    assert "aliyunsdkcore" in names, logged[-2000:]  # the ACR adapter was loaded: the control of this path
    unwanted = sorted(n for n in names if n.split(".")[0] in CHAIN)
    assert not unwanted, f"a static key imports {unwanted}; top importers:\n{top_importers(rows)}"


def test_without_a_key_the_same_pass_asks_the_credential_chain(tmp_path: Path) -> None:
    rows, logged = once_imports(tmp_path, watch=ACR_WATCH, env=_acr_env(tmp_path))
    names = {name.strip() for _, _, name in rows}
    assert "alibabacloud_credentials" in names, logged[-2000:]
    assert "no Alibaba Cloud credentials" in logged and "default credential chain found none" in logged


def test_the_events_bench_reads_are_emitted_by_the_agent() -> None:
    source = "\n".join(p.read_text() for p in AGENT.rglob("*.py"))
    for event in AGENT_EVENTS:
        assert f'"{event}"' in source, f"bench/ reads the {event!r} event, which the agent no longer logs"


def test_the_import_check_sees_an_optional_module_when_it_is_used(tmp_path: Path) -> None:
    """The control: --metrics-file needs prometheus-client, and the same parse finds it."""
    rows, _ = once_imports(tmp_path, "--metrics-file", str(tmp_path / "m.prom"))
    names = {name.strip() for _, _, name in rows}
    assert "prometheus_client" in names and "agent.metrics" in names


def test_the_tooling_is_strict_and_lints_bench() -> None:
    """Unknown pytest options fail, mypy runs in strict mode, and CI lints bench/ like the rest."""
    from agent.compat import tomllib

    root = AGENT.parent
    project = tomllib.loads((root / "pyproject.toml").read_text())["tool"]
    assert "--strict-config" in project["pytest"]["ini_options"]["addopts"].split()
    assert project["mypy"]["strict"] is True
    ci = (root / ".ci" / "run").read_text().splitlines()
    for command in ("ruff check", "ruff format --check"):
        assert any(command in line and "bench" in line.split() for line in ci), f"{command} skips bench/"
