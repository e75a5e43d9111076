"""The house rules of docs/SPEC.md §1, read from every module's imports: `workflow/` imports
nothing of ours; `storage/` and `forge/` import `workflow/` at most; nothing outside `bot/`
imports `bot/`; the simulator `sim/` imports nothing of ours and only the demo and the CLI's
`sim` command import it; only `bot/discord/` imports discord.py; `roles/` sees GitLab only
through the ports (SPEC §12): it imports no concrete gateway, and the ports import no
adapter."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("bot", "roles", "workflow", "forge", "storage", "sim")
PRODUCT = ("bot", "roles", "workflow", "forge", "storage")
ALLOWED = {
    "workflow": {"workflow"},
    "storage": {"storage", "workflow"},
    "forge": {"forge", "workflow"},
    "roles": {"roles", "forge", "storage", "workflow"},
    "bot": set(PACKAGES),
    "sim": {"sim", "forge"},  # forge.junit only: see SIM_MAY_IMPORT
}
# The simulator renders JUnit reports with crewline's pure parser, so both read one format the
# same way; nothing else of crewline.
SIM_MAY_IMPORT = {"forge.junit"}
# The simulator is for the demo and the tests, never production: `crewline run` must not load
# it, so the CLI imports it only inside its `sim` command.
SIM_USERS = {"bot/demo.py": "anywhere", "bot/commands.py": "inside a function"}


def imported_by(path: Path, *, top_level_only: bool = False) -> set[str]:
    """The top-level names of the modules ``path`` imports: at any depth (a function-level
    import counts as much as one at the top), or only those the module body runs."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    nodes = tree.body if top_level_only else ast.walk(tree)
    found = set()
    for node in nodes:
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        found |= {name.split(".")[0] for name in names}
    return found


def ours_imported_by(path: Path) -> set[str]:
    """The packages of ours that ``path`` imports, at any depth."""
    return imported_by(path) & set(PACKAGES)


def modules(package: str) -> list[Path]:
    return sorted(
        path
        for path in (ROOT / package).rglob("*.py")
        if "seed" not in path.relative_to(ROOT).parts  # the demo project's own files
    )


@pytest.mark.parametrize("package", PACKAGES)
def test_each_package_imports_only_what_the_layering_allows(package: str) -> None:
    breaches = {
        str(path.relative_to(ROOT)): sorted(extra)
        for path in modules(package)
        if (extra := ours_imported_by(path) - ALLOWED[package])
    }
    assert breaches == {}, f"{package}/ may import only {sorted(ALLOWED[package])}"


def test_the_check_sees_imports_at_any_depth(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from storage.leases import Lease\n    import bot.cli\n")
    assert ours_imported_by(module) == {"storage", "bot"}


def product_modules() -> list[Path]:
    return [path for package in PRODUCT for path in modules(package)]


def test_the_simulator_imports_nothing_of_crewline_but_the_junit_parser() -> None:
    imported = set()
    for path in modules("sim"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                imported.add(node.module)
            elif isinstance(node, ast.Import):
                imported |= {alias.name for alias in node.names}
    assert {name for name in imported if name.split(".")[0] in PRODUCT} == SIM_MAY_IMPORT


def test_only_the_demo_and_the_sim_command_import_the_simulator() -> None:
    users = {
        str(path.relative_to(ROOT)) for path in product_modules() if "sim" in imported_by(path)
    }
    assert users <= set(SIM_USERS), "only the demo and `crewline sim` may import sim/"
    assert "sim" not in imported_by(ROOT / "bot" / "commands.py", top_level_only=True)


def test_only_bot_discord_imports_discord_py() -> None:
    importers = {
        str(path.relative_to(ROOT))
        for path in product_modules()
        if "discord" in imported_by(path) and path.relative_to(ROOT).parts[:2] != ("bot", "discord")
    }
    assert importers == set(), "discord.py belongs under bot/discord/"


def test_an_idle_host_loads_neither_discord_nor_the_simulator() -> None:
    """What `crewline run` imports before it knows whether Discord is configured."""
    probe = (
        "import sys, bot.cli, bot.app, bot.serve, bot.scheduler\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'discord', 'sim'}))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()
    assert loaded == "[]"


def test_the_checks_see_third_party_and_top_level_imports(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("import discord\n\ndef f():\n    from sim.core.app import running_sim\n")
    assert imported_by(module) == {"discord", "sim"}
    assert imported_by(module, top_level_only=True) == {"discord"}


# The GitLab adapter's concrete classes: only the composition root in bot/ builds them; roles
# are typed against the ports of roles/ports.py (SPEC §12).
CONCRETE = {
    "forge.gateway": {"Gateway"},
    "forge.merge_gateway": {"MergeGateway"},
    "forge.ci_history": {"CiHistory"},
    "forge.client": {"GitLabClient"},
    # The claim protocol and the audited call path are forge's too: roles see IssueClaims
    # and GitLabCalls.
    "forge.claims": {"Claims"},
    "forge.calls": {"AuditedCalls"},
}
# What the ports may import: workflow, forge's typed data and the ports' own definitions.
PORTS_MAY_IMPORT = {
    "forge/ports.py": {
        "forge.ci_types",
        "forge.claim_notes",  # ClaimView, what IssueClaims.current answers
        "forge.claim_types",  # Claim and LocalLeases
        "forge.guard",  # Guard, which GitLabCalls exposes for screening pushes
        "forge.mr_types",
        "forge.types",
        "workflow",
    },
    "roles/ports.py": {
        "forge.calls",  # AuditSink
        "forge.claim_types",  # LocalLeases
        "forge.ports",
        "forge.types",
        "roles.agents.base",
        "roles.notify",
        "roles.sandbox.base",
        "roles.context",  # for the Role port's annotations only
        "roles.engine.admission",
    },
}


def concrete_gateways_named(path: Path) -> set[str]:
    """The concrete gateway classes and python-gitlab modules ``path`` imports."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.split(".")[0] == "gitlab":
                found.add(node.module)
            wanted = CONCRETE.get(node.module, set())
            found |= {f"{node.module}.{a.name}" for a in node.names if a.name in wanted | {"*"}}
        elif isinstance(node, ast.Import):
            for alias in node.names:
                # A module import reaches its classes as attributes: banned whole.
                if alias.name.split(".")[0] == "gitlab" or alias.name in CONCRETE:
                    found.add(alias.name)
    return found


def test_roles_import_no_concrete_gateway() -> None:
    breaches = {
        str(path.relative_to(ROOT)): sorted(names)
        for path in modules("roles")
        if (names := concrete_gateways_named(path))
    }
    assert breaches == {}, "roles/ uses the ports of roles/ports.py; bot/ builds the gateways"


def test_the_gateway_check_sees_every_way_to_name_one(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text(
        "from forge.gateway import StaleState, Gateway\n"
        "import forge.merge_gateway\n"
        "def f():\n    from gitlab.v4.objects import Project\n    import gitlab\n"
        "from forge.ci_history import *\n"
        "from forge.claims import Claim, Claims\n"
    )
    assert concrete_gateways_named(module) == {
        "forge.gateway.Gateway",
        "forge.merge_gateway",
        "gitlab.v4.objects",
        "gitlab",
        "forge.ci_history.*",
        "forge.claims.Claims",
    }
    module.write_text("from forge.gateway import StaleState, note_marker\n")
    assert concrete_gateways_named(module) == set()


@pytest.mark.parametrize("ports", sorted(PORTS_MAY_IMPORT))
def test_the_ports_import_only_contracts(ports: str) -> None:
    tree = ast.parse((ROOT / ports).read_text(encoding="utf-8"), ports)
    imported = {
        node.module
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0
    } | {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    }
    ours = {name for name in imported if name.split(".")[0] in PACKAGES}
    assert ours <= PORTS_MAY_IMPORT[ports], (
        f"{ports} imports an adapter: {sorted(ours - PORTS_MAY_IMPORT[ports])}"
    )
