"""Finding and loading plugins. The pluggy plugin manager is the only registry.

Entry points of the ``deploybench`` group are loaded one by one: a plugin that fails to import is
recorded as broken (name, distribution, error) and the others still load. ``-p module`` imports
and registers a module; ``-p no:name`` blocks an entry point (or a ``-p`` module) by name.

Mistakes a plugin author makes silently are reported as broken plugins instead: a hook
implementation whose name matches no hook (``deploybench_register_optimiser``), a hook function
without ``@hookimpl``, a task, optimizer or executor name that cannot be a folder name or part of a
node id. Two plugins registering the same name is a usage error naming both.
"""

from __future__ import annotations

import importlib
import importlib.metadata as md
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import pluggy

from . import hookspecs
from .optimizer import Optimizer
from .errors import UsageError, unknown_name_message  # noqa: F401 - re-exported: plugins import them from here
from .specs import OptimizerSpec, check_plugin_name
from .task import TaskSpec

__all__ = ["PluginInfo", "BrokenPlugin", "DeployBenchPluginManager", "create_plugin_manager", "UsageError"]

ENTRY_POINT_GROUP = "deploybench"


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
    """A pluggy ``PluginManager`` plus what was loaded, what broke, and the registries built from hooks.

    Optimizers may be registered as classes or as :class:`~deploybench.specs.OptimizerSpec` (import
    path); a spec's module is imported only by :meth:`get_optimizer_class`, so commands that do not
    run that optimizer never import its library.
    """

    pm: pluggy.PluginManager
    loaded: list[PluginInfo] = field(default_factory=list)
    broken: list[BrokenPlugin] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)
    _classes: dict[str, type[Optimizer]] = field(default_factory=dict, repr=False)

    @property
    def hook(self) -> Any:
        return self.pm.hook

    def report_broken(self, plugin: BrokenPlugin) -> None:
        """Record a broken plugin once (registries are rebuilt on every call)."""
        if all((b.name, b.source, b.error) != (plugin.name, plugin.source, plugin.error) for b in self.broken):
            self.broken.append(plugin)

    # -- registries (rebuilt from the hooks each time: no global state) ----------------------------
    def _owner_map(self, hook_name: str) -> list[tuple[str, Any]]:
        out = []
        hook = getattr(self.pm.hook, hook_name)
        for impl in reversed(hook.get_hookimpls()):  # registration order
            try:
                items = impl.function() or []
            except Exception as exc:  # a plugin whose hook raises is reported, not fatal
                self.report_broken(BrokenPlugin(impl.plugin_name, "hook " + hook_name,
                                                f"{type(exc).__name__}: {exc}", traceback.format_exc()))
                continue
            for item in items:
                out.append((impl.plugin_name, item))
        return out

    def _named(self, kind: str, hook_name: str, name_of: Callable[[Any], Any]) -> dict[str, tuple[str, Any]]:
        """``name -> (owner, item)`` of one registration hook: an invalid name makes its plugin broken,
        the same name from two plugins is a usage error naming both."""
        named: dict[str, tuple[str, Any]] = {}
        for owner, item in self._owner_map(hook_name):
            name = name_of(item)
            problem = check_plugin_name(kind, name)
            if problem:
                self.report_broken(BrokenPlugin(owner, kind, f"{problem} ({item!r})"))
                continue
            if name in named:
                first, second = sorted((named[name][0], owner))
                raise UsageError(f"{kind} {name!r} is registered by both {first!r} and {second!r}; "
                                 f"block one with -p no:NAME")
            named[name] = (owner, item)
        return named

    def task_specs(self) -> dict[str, TaskSpec]:
        return {name: spec for name, (_, spec) in
                self._named("task", "deploybench_register_tasks", lambda s: getattr(s, "name", None)).items()}

    def optimizer_specs(self) -> dict[str, OptimizerSpec]:
        """Every registered optimizer by name, without importing any optimizer module."""
        out: dict[str, OptimizerSpec] = {}
        for name, (_, item) in self._named("optimizer", "deploybench_register_optimizers",
                                           lambda i: getattr(i, "name", None)).items():
            if isinstance(item, type):
                self._classes.setdefault(name, item)
                out[name] = OptimizerSpec.of(item)
            else:
                out[name] = item
        return out

    def _optimizer_owner(self, name: str) -> str:
        owners = self._named("optimizer", "deploybench_register_optimizers", lambda i: getattr(i, "name", None))
        return owners[name][0] if name in owners else "?"

    def load_optimizer(self, spec: OptimizerSpec) -> type[Optimizer]:
        """The class of a registered optimizer, imported now if the plugin registered an import path."""
        if spec.name not in self._classes:
            self._classes[spec.name] = spec.load()
        return self._classes[spec.name]

    def optimizer_classes(self) -> dict[str, type[Optimizer]]:
        """Every optimizer class (imports them all); one that cannot be imported is reported as broken."""
        classes: dict[str, type[Optimizer]] = {}
        for name, spec in self.optimizer_specs().items():
            try:
                classes[name] = self.load_optimizer(spec)
            except Exception as exc:  # noqa: BLE001 - one broken optimizer must not hide the others
                self.report_broken(BrokenPlugin(self._optimizer_owner(name), f"optimizer {name} ({spec.import_path})",
                                                f"{type(exc).__name__}: {exc}", traceback.format_exc()))
        return classes

    def executors(self) -> dict[str, Any]:
        return {name: ex for name, (_, ex) in
                self._named("executor", "deploybench_register_executors", lambda e: getattr(e, "name", None)).items()}

    def leaderboard_metrics(self) -> list[Any]:
        return [m for _, m in self._owner_map("deploybench_leaderboard_metrics")]

    def get_task_spec(self, name: str) -> TaskSpec:
        specs = self.task_specs()
        if name not in specs:
            raise UsageError(unknown_name_message("task", name, specs))
        return specs[name]

    def get_optimizer_class(self, name: str) -> type[Optimizer]:
        """The class of optimizer ``name`` (importing only its module); unknown or unimportable
        names are usage errors."""
        specs = self.optimizer_specs()
        if name not in specs:
            raise UsageError(unknown_name_message("optimizer", name, specs))
        try:
            return self.load_optimizer(specs[name])
        except Exception as exc:  # noqa: BLE001
            raise UsageError(f"optimizer {name!r} (plugin {self._optimizer_owner(name)!r}) cannot be loaded from "
                             f"{specs[name].import_path}: {type(exc).__name__}: {exc}") from exc


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
    _unknown_hooks(manager)
    return manager


def _register(manager: DeployBenchPluginManager, plugin: Any, name: str, source: str) -> None:
    try:
        manager.pm.register(plugin, name=name)
    except Exception as exc:  # e.g. a hookimpl whose arguments match no hookspec
        manager.broken.append(BrokenPlugin(name, source, f"{type(exc).__name__}: {exc}", traceback.format_exc()))
        return
    problem = _undecorated_hook(plugin)
    if problem:
        manager.pm.unregister(plugin)
        manager.broken.append(BrokenPlugin(name, source, problem))
        return
    manager.loaded.append(PluginInfo(name, source, getattr(plugin, "__name__", repr(plugin))))


def _undecorated_hook(plugin: Any) -> str | None:
    """A function named like a hook but without ``@hookimpl`` would silently do nothing."""
    for hook_name in _HOOK_NAMES:
        fn = getattr(plugin, hook_name, None)
        if callable(fn) and not hasattr(fn, hookspecs.PROJECT_NAME + "_impl"):
            return f"{hook_name} is not decorated with @deploybench.hookimpl, so it would never be called"
    return None


def _unknown_hooks(manager: DeployBenchPluginManager) -> None:
    """Unregister plugins implementing hooks that do not exist (a misspelt hook would contribute
    nothing, silently) and report each as broken, naming the hook and the closest real one.

    pluggy's ``check_pending`` finds them; it raises for one plugin at a time, hence the loop."""
    sources = {p.name: p.source for p in manager.loaded}
    while True:
        try:
            manager.pm.check_pending()
            return
        except pluggy.PluginValidationError as exc:
            plugin = exc.plugin
            name = manager.pm.get_name(plugin) or repr(plugin)
            unknown = sorted(c.name for c in manager.pm.get_hookcallers(plugin) or [] if not c.has_spec())
            hook_name = unknown[0] if unknown else "?"
            manager.pm.unregister(plugin)
            manager.loaded = [p for p in manager.loaded if p.name != name]
            message = unknown_name_message("hook", hook_name, _HOOK_NAMES)
            manager.broken.append(BrokenPlugin(name, sources.get(name, "plugin"), message))


_HOOK_NAMES = tuple(sorted(n for n in dir(hookspecs) if n.startswith(hookspecs.PROJECT_NAME + "_")))
