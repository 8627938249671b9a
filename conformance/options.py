"""The plugin's command-line options, as one table read by pytest and by ``conformance run``.

Every option has a prefixed name that is always registered (``--conformance-impl``) and, for the
ones a maintainer types often, a short alias (``--impl``). An alias is registered only when no
other plugin or rootdir conftest has taken that name first (``--device`` is a common conftest
option): installed beside another project, the plugin must never break that project's pytest.
``conformance run`` accepts the aliases always (it turns them into the prefixed names), so the
README's commands work whatever else is installed.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Option:
    name: str                     # the prefixed name, always registered
    help: str
    alias: str | None = None      # the short name, registered when free
    kwargs: dict = field(default_factory=dict)

    @property
    def dest(self) -> str:
        return self.name.lstrip("-").replace("-", "_")

    @property
    def takes_value(self) -> bool:
        return self.kwargs.get("action") not in ("store_true", "store_false")


def _impl_help() -> str:
    from . import impls
    return ("implementations to run (comma-separated, repeatable, globs allowed); default: all of "
            + ", ".join(impls.ids()))


OPTIONS: tuple[Option, ...] = (
    Option("--conformance-impl", "", "--impl", {"action": "append", "default": [], "metavar": "IDS"}),
    Option("--conformance-device", "devices to run on (cpu, gpu; comma-separated, repeatable); default: every "
           "device this machine has", "--device", {"action": "append", "default": [], "metavar": "DEVICES"}),
    Option("--conformance-divergences", "an extra known-divergence catalogue (repeatable); its declarations "
           "replace those of the same id from the shipped and project catalogues", "--divergences",
           {"action": "append", "default": [], "metavar": "FILE"}),
    Option("--conformance-no-builtin-divergences", "do not apply the known-divergence catalogue shipped with "
           "lstm-conformance", "--no-builtin-divergences", {"action": "store_true"}),
    Option("--conformance-shard", "run only shard I of N (1 <= I <= N): a run's shard depends only on its own "
           "file, case, implementation and device; merge the shards' results with `conformance report`",
           "--shard", {"default": None, "metavar": "I/N"}),
    Option("--conformance-shape-only", "shape-only: each framework infers the shapes and the parameter count "
           "without computing (Keras's symbolic call, torch's meta device, jax.eval_shape), and only the shape, "
           "dtype, parameter, acceptance and shape-claim checks are asked: no values, for speed at scale",
           "--shape-only", {"action": "store_true"}),
    Option("--conformance-no-symbolic", "do not ask the frameworks' shape inference beside each eager run (the "
           "symbolic check): faster reruns when only values matter", "--no-symbolic", {"action": "store_true"}),
    Option("--conformance-run-timeout", "a run taking longer kills its worker and is an error (default 300; "
           "a finite number > 0, at most 1e6)", "--run-timeout",
           {"type": float, "default": 300.0, "metavar": "SECONDS"}),
    Option("--conformance-out", "write this session's results.json and index.html into DIR (default: "
           "reports/<run-id>/ under the rootdir, linked as reports/latest)", None,
           {"default": None, "metavar": "DIR"}),
    Option("--no-conformance-report", "write no results.json or report for this session", None,
           {"action": "store_true"}),
    Option("--conformance-flush", "rewrite results.json (marked partial) at most this often while runs finish, "
           "so a killed session keeps them (default 5; 0 = after every run)", None,
           {"type": float, "default": 5.0, "metavar": "SECONDS"}),
    Option("--conformance-fill", "run only the runs that RESULTS (a results.json, e.g. a partial one left by an "
           "interrupted session) does not hold, and write results holding both", None,
           {"default": None, "metavar": "RESULTS"}),
    Option("--conformance-cases", "treat every YAML file with top-level cases:/divergences: under PATH as a "
           "case file, without the `lstm-conformance: 1` line that files found elsewhere need", None,
           {"action": "append", "default": [], "metavar": "PATH"}),
    Option("--conformance-run", "set by `conformance run`: its paths are case paths, and with none it runs the "
           "shipped default case set", None, {"action": "store_true"}),
)

BY_ALIAS = {o.alias: o for o in OPTIONS if o.alias}
BY_NAME = {o.name: o for o in OPTIONS}


def register(parser) -> None:
    """pytest_addoption: the prefixed names (aliases come later, see :func:`add_free_aliases`)."""
    g = parser.getgroup("conformance", "LSTM conformance cases")
    for o in OPTIONS:
        g.addoption(o.name, dest=o.dest, help=o.help or _impl_help(), **o.kwargs)


def _taken(parser) -> set[str]:
    groups = [*getattr(parser, "_groups", []), getattr(parser, "_anonymous", None)]
    return {n for g in groups if g is not None for opt in g.options for n in opt.names()}


def add_free_aliases(parser) -> list[str]:
    """Register each alias no one else has registered (after the rootdir conftests did theirs);
    returns the aliases left out because they were taken."""
    taken = _taken(parser)
    g = parser.getgroup("conformance")
    left = []
    for o in OPTIONS:
        if not o.alias:
            continue
        if o.alias in taken:
            left.append(o.alias)
            continue
        g.addoption(o.alias, dest=o.dest, help=f"the same as {o.name}", **o.kwargs)
    return left


def canonical(argv: list[str]) -> list[str]:
    """``argv`` with every alias (``--impl X``, ``--impl=X``) spelled by its prefixed name."""
    out = []
    for a in argv:
        name, eq, value = a.partition("=")
        o = BY_ALIAS.get(name)
        out.append(f"{o.name}{eq}{value}" if o else a)
    return out
