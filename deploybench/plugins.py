"""Finding and loading plugins. The pluggy plugin manager is the only registry.

Entry points of the ``deploybench`` group are loaded one by one: a plugin that fails to import is
recorded as broken (name, distribution, error) and the others still load. ``-p module`` imports
and registers a module; ``-p no:name`` blocks an entry point (or a ``-p`` module) by name.
"""

from __future__ import annotations

import importlib
import importlib.metadata as md
import traceback
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import pluggy

from . import hookspecs
from .optimizer import Optimizer
from .space import closest_name
from .task import TaskSpec

__all__ = ["PluginInfo", "BrokenPlugin", "DeployBenchPluginManager", "create_plugin_manager", "UsageError"]

ENTRY_POINT_GROUP = "deploybench"


class UsageError(Exception):
    """Bad input from the user: the message says what was wrong and what is allowed. Exit code 2."""


@dataclass(frozen=True)
class PluginInfo:
    name: str
    source: str  # "entry point <dist>==<version>" or "-p"
    module: str


@dataclass(frozen=True)
class BrokenPlugin:
    name: str
    source: str
    error: str
    traceback: str = ""


@dataclass
class DeployBenchPluginManager:
    """A pluggy ``PluginManager`` plus what was loaded, what broke, and the registries built from hooks."""

    pm: pluggy.PluginManager
    loaded: list[PluginInfo] = field(default_factory=list)
    broken: list[BrokenPlugin] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)

    @property
    def hook(self) -> Any:
        return self.pm.hook

    # -- registries (rebuilt from the hooks each time: no global state) ----------------------------
    def _owner_map(self, hook_name: str) -> list[tuple[str, Any]]:
        out = []
        hook = getattr(self.pm.hook, hook_name)
        for impl in reversed(hook.get_hookimpls()):  # registration order
            try:
                items = impl.function() or []
            except Exception as exc:  # a plugin whose hook raises is reported, not fatal
                self.broken.append(BrokenPlugin(impl.plugin_name, "hook " + hook_name, f"{type(exc).__name__}: {exc}",
                                                traceback.format_exc()))
                continue
            for item in items:
                out.append((impl.plugin_name, item))
        return out

    def task_specs(self) -> dict[str, TaskSpec]:
        specs: dict[str, TaskSpec] = {}
        owners: dict[str, str] = {}
        for owner, spec in self._owner_map("deploybench_register_tasks"):
            if spec.name in specs:
                raise UsageError(f"task {spec.name!r} is registered by both {owners[spec.name]!r} and {owner!r}")
            specs[spec.name] = spec
            owners[spec.name] = owner
        return specs

    def optimizer_classes(self) -> dict[str, type[Optimizer]]:
        classes: dict[str, type[Optimizer]] = {}
        owners: dict[str, str] = {}
        for owner, cls in self._owner_map("deploybench_register_optimizers"):
            name = getattr(cls, "name", "")
            if not name:
                self.broken.append(BrokenPlugin(owner, "optimizer", f"{cls!r} has no name"))
                continue
            if name in classes:
                raise UsageError(f"optimizer {name!r} is registered by both {owners[name]!r} and {owner!r}")
            classes[name] = cls
            owners[name] = owner
        return classes

    def executors(self) -> dict[str, Any]:
        return {ex.name: ex for _, ex in self._owner_map("deploybench_register_executors")}

    def leaderboard_metrics(self) -> list[Any]:
        return [m for _, m in self._owner_map("deploybench_leaderboard_metrics")]

    def get_task_spec(self, name: str) -> TaskSpec:
        specs = self.task_specs()
        if name not in specs:
            raise UsageError(unknown_name_message("task", name, specs))
        return specs[name]

    def get_optimizer_class(self, name: str) -> type[Optimizer]:
        classes = self.optimizer_classes()
        if name not in classes:
            raise UsageError(unknown_name_message("optimizer", name, classes))
        return classes[name]


def unknown_name_message(kind: str, name: str, known: Iterable[str], *, where: str = "", also: str = "") -> str:
    """Say what was wrong, what is allowed and the closest valid name (``where``: " for task 'x'")."""
    known = sorted(known)
    hint = closest_name(name, known)
    msg = f"unknown {kind} {name!r}{where}; known {kind}s: {', '.join(known) or '(none)'}{also}"
    if hint:
        msg += f"; did you mean {hint!r}?"
    return msg


def _entry_points() -> list[md.EntryPoint]:
    eps = md.entry_points(group=ENTRY_POINT_GROUP)
    seen: dict[str, md.EntryPoint] = {}
    for ep in eps:  # the same distribution found twice on sys.path is listed once
        seen.setdefault(ep.name, ep)
    return list(seen.values())


def create_plugin_manager(plugin_args: Sequence[str] = (), *, load_entry_points: bool = True) -> DeployBenchPluginManager:
    """Build the plugin manager: hookspecs, entry points (isolated), then ``-p`` modules.

    ``plugin_args`` are the values given to ``-p``: a module name to load, or ``no:NAME`` to block
    the entry point or module called NAME.
    """
    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    manager = DeployBenchPluginManager(pm)
    blocked = [a[3:] for a in plugin_args if a.startswith("no:")]
    to_load = [a for a in plugin_args if not a.startswith("no:")]
    for name in blocked:
        pm.set_blocked(name)
    manager.blocked = blocked

    if load_entry_points:
        for ep in _entry_points():
            if pm.is_blocked(ep.name):
                continue
            dist = getattr(ep, "dist", None)
            source = f"entry point of {dist.name}=={dist.version}" if dist is not None else "entry point"
            try:
                plugin = ep.load()
            except BaseException as exc:  # noqa: BLE001 - a broken plugin must not stop the others
                if isinstance(exc, (KeyboardInterrupt, SystemExit)) and not isinstance(exc, SystemExit):
                    raise
                manager.broken.append(BrokenPlugin(ep.name, source, f"{type(exc).__name__}: {exc}", traceback.format_exc()))
                continue
            _register(manager, plugin, ep.name, source)

    for module_name in to_load:
        if pm.is_blocked(module_name) or pm.has_plugin(module_name):
            continue
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:
            raise UsageError(f"-p {module_name}: cannot import the plugin module: {type(exc).__name__}: {exc}") from exc
        _register(manager, module, module_name, "-p")
    return manager


def _register(manager: DeployBenchPluginManager, plugin: Any, name: str, source: str) -> None:
    try:
        manager.pm.register(plugin, name=name)
    except Exception as exc:  # e.g. a hookimpl that matches no hookspec
        manager.broken.append(BrokenPlugin(name, source, f"{type(exc).__name__}: {exc}", traceback.format_exc()))
        return
    manager.loaded.append(PluginInfo(name, source, getattr(plugin, "__name__", repr(plugin))))
