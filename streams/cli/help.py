"""Help text shared by every command: metavars that say what a value is (``TIME``, ``FILE``,
``HOST:PORT``, not a Python type) and each command's examples."""

from __future__ import annotations

from typing import Any

# option -> metavar, one name per concept across commands
METAVARS = {
    "--since": "TIME",
    "--until": "TIME",
    "--start": "TIME",
    "--trace-start": "TIME|default",
    "--offsets": "FROM:TO",
    "--partition": "N",
    "--catalog": "FILE",
    "--json": "FILE",
    "--csv": "FILE",
    "--out": "DIR",
    "--data": "DIR",
    "--report-dir": "DIR",
    "--carbon": "DIR",
    "--energy": "FILE",
    "--correctness": "FILE...",
    "--policy-config": "FILE",
    "--zones": "ZONE,...",
    "--models": "MODEL,...",
    "--model": "MODEL",
    "--policies": "POLICY,...",
    "--policy": "POLICY",
    "--dataset": "DATASET",
    "--datasets": "DATASET,...",
    "--floors": "DATASET=F,...",
    "--tag": "KEY=VALUE",
    "--topic": "TOPIC",
    "--service": "kafka|metrics",
    "--signal": "direct|lca",
    "--source": "metrics|decisions",
    "--mode": "strict|balanced|green",
    "--priors": "calibration|hindsight",
    "--group-id": "GROUP",
    "--run-id": "ID",
    "--loglevel": "LEVEL",
    "--sweep": "ALPHA,...",
    "--last": "N",
}
_BY_TYPE = {"int": "N", "float": "NUMBER", "path": "PATH", "str": "TEXT"}

# command path -> examples (every command has some; a test holds them to it)
EXAMPLES: dict[str, list[str]] = {
    "worker": ["gar worker", "GAR_WORKER__WEB_PORT=6067 gar worker --loglevel info"],
    "demo": ["gar demo", "gar demo --requests 2000 --keep-topics", "gar demo --data ../data"],
    "topics": ["gar topics create", "gar topics list --prefix demo."],
    "topics create": ["gar topics create", "gar --prefix staging. topics create"],
    "topics list": ["gar topics list", "gar topics list --prefix demo."],
    "topics describe": ["gar topics describe --prefix gar."],
    "topics delete": ["gar topics delete --prefix demo.3f2a1c. --yes"],
    "produce": [
        "gar produce --requests 10000 --rate 2000",
        "gar produce -n 500 --poison 0.1",
        "gar produce --speedup 1200 --days 7 --tenants 20",
    ],
    "carbon-feed": [
        "gar carbon-feed --start 2023-06-01T00:00:00Z --hours 48 --speedup 3600",
        "gar carbon-feed --zones GB,DE-LU --hours 24",
        "gar carbon-feed --trace-start default --speedup 1200  # with gar produce --speedup 1200",
    ],
    "fleet": ["gar fleet --idle-timeout 10", "gar fleet --duration 600 --model Llama-3.1-8B"],
    "report": ["gar report --since 1h --out gar-report", "gar report --tag tenant=acme"],
    "audit": [
        "gar audit",
        "gar audit --since 6h --json audit.json",
        "gar --prefix demo.3f2a1c. audit --policy always-largest",
    ],
    "explain": [
        "gar explain req-000123",
        "gar --prefix demo.3f2a1c. explain req-000123 --tenant acme --json",
    ],
    "metrics-backfill": ["gar metrics-backfill --since 2023-05-31T00:00:00Z --until 1d"],
    "eval": [
        "gar eval --json out/eval.json",
        "gar eval --data ../shared/data --requests 30000 --zones GB,SG --json out/eval.json",
    ],
    "eval run": [
        "gar eval --json out/eval.json",
        "gar eval --data ../shared/data --requests 30000 --zones GB,SG --json out/eval.json",
    ],
    "eval matrix": ["gar eval matrix --out out/matrix", "gar eval matrix --help"],
    "probe": ["gar probe ready"],
    "catalog": ["gar catalog build --out catalog.json"],
    "catalog build": ["gar catalog build --data ../shared/data --out catalog.json"],
    "dev": ["gar dev up", "gar dev status", "gar dev down --clean"],
    "dev up": ["gar dev up", "gar dev up --service kafka", "gar dev up --service cluster"],
    "dev down": ["gar dev down", "gar dev down --clean"],
    "dev status": ["gar dev status"],
    "dev fetch": ["gar dev fetch --service kafka"],
    "dev serve": ["gar dev serve --service kafka  # in the foreground: a container's process"],
    "policy": ["gar policy show", "gar policy set policy.json"],
    "policy show": ["gar policy show", "gar policy show --json"],
    "policy set": ["gar policy set policy.json", "gar policy set policy.json --dry-run"],
    "policy validate": ["gar policy validate policy.json"],
    "policy history": ["gar policy history", "gar policy history --last 5"],
    "tenants": ["gar tenants show acme"],
    "tenants show": ["gar tenants show acme", "gar tenants show acme --json"],
}


# Duck-typed: typer ships its own copy of click's classes.
def _metavar(param: Any) -> str | None:
    if param.param_type_name != "option":
        return None
    if param.is_flag or param.count:
        return ""  # a flag takes no value
    for opt in param.opts:
        if opt in METAVARS:
            return METAVARS[opt]
    desc = param.type_descriptor
    if desc.is_choice:
        return "|".join(str(c) for c in desc.choices or ())
    name = str(param.bare_type()).lower()
    name = name.removeprefix("list[").removesuffix("]")
    return _BY_TYPE.get(name, name.upper())


def polish(command: Any, path: str = "") -> None:
    """Set metavars and examples on ``command`` and every sub-command."""
    for param in command.params:
        if param.metavar is None:
            mv = _metavar(param)
            if mv is not None:
                param.metavar = mv
            elif param.param_type_name == "argument":
                # typer's help prints an argument's type next to its name: the name says it
                param.display_type_rich = lambda ctx: ""
    help_option = command.get_help_option

    def no_metavar_help(ctx: Any) -> Any:
        opt = help_option(ctx)
        if opt is not None:
            opt.metavar = ""
        return opt

    command.get_help_option = no_metavar_help
    examples = EXAMPLES.get(path)
    if examples and not command.epilog:
        command.epilog = "Examples:\n\n" + "\n\n".join(f"  {e}" for e in examples)
    for name, sub in getattr(command, "commands", {}).items():
        polish(sub, f"{path} {name}".strip())
