"""Components that plug in: one mechanism for every replaceable part of a run.

A component is a named implementation with typed parameters, declared with
the helpers of ``vmexp.fields``. A module adds one to a registry when it is
imported::

    @SIZES.register("lognormal")
    @dataclass(frozen=True)
    class LogNormal:
        median: int = size(None, "the median size", lo=1)
        ...

The registries below are the kinds of component a run is made of:
replacement policies (``policy=NAME``), allocators (``allocator=NAME``),
workload kinds (``workload.kind``), size distributions
(``workload.sizes.dist``), lifetime models (``workload.lifetime.dist``) and
access patterns (``workload.access.pattern``). No list of names is kept by
hand anywhere: a registry imports every module of its packages the first
time a name is looked up (``pkgutil``), and a module outside the package
joins by being imported, for instance through the ``plugins`` setting
(``python run.py plugins=[my_policies] policy.name=mine``).

Why a registry rather than Hydra's ``_target_``: the names are the
contract (``policy=lru``, ``sizes: {dist: lognormal}``), a registry can list
the valid names and parameters when one is wrong, and a YAML file never has
to name a Python class.

Kept free of the engine: importing this module imports no component; the
report can read the declarations without loading the simulator.
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from vmexp.fields import COMPONENTS, ConfigError, parse_section, to_plain

__all__ = [
    "ACCESS_PATTERNS",
    "ALLOCATORS",
    "LIFETIMES",
    "POLICIES",
    "REGISTRIES",
    "SIZE_DISTS",
    "WORKLOAD_KINDS",
    "Component",
    "Registry",
    "import_plugins",
]

T = TypeVar("T")


@dataclass(frozen=True)
class Component(Generic[T]):
    """One registered implementation: its name, the object that does the work, its declared parameters."""

    name: str
    obj: T
    params: type
    doc: str
    traits: frozenset[str] = field(default_factory=frozenset)
    module: str = ""


class Registry(Generic[T]):
    """Named components of one kind; the names and parameters come from the components themselves.

    ``what`` names the kind in messages (``sizes dist``), ``name_key`` is the
    key that chooses one (``dist``), ``default`` the choice when that key is
    left out, ``packages`` the packages whose modules are imported to find
    the built-in components, ``error`` the exception a bad value raises.
    """

    def __init__(
        self,
        what: str,
        name_key: str,
        *,
        packages: tuple[str, ...] = (),
        error: type[Exception] = ConfigError,
        default: str | None = None,
        doc: str = "",
    ) -> None:
        self.what = what
        self.name_key = name_key
        self.packages = packages
        self.error = error
        self.default = default
        self.doc = doc
        self._items: dict[str, Component[T]] = {}
        self._by_params: dict[type, str] = {}
        self._discovered = False

    # -------------------------------------------------------------- filling

    def add(
        self, name: str, obj: T, params: type, *, doc: str = "", traits: Iterable[str] = ()
    ) -> Component[T]:
        if not name or not isinstance(name, str):
            raise TypeError(f"a {self.what} needs a name, got {name!r}")
        if not dataclasses.is_dataclass(params):
            raise TypeError(f"{self.what} {name}: its parameters must be a dataclass, got {params!r}")
        text = doc or (getattr(obj, "__doc__", None) or "").strip()
        comp = Component(
            name=name,
            obj=obj,
            params=params,
            doc=text.splitlines()[0] if text else "",
            traits=frozenset(traits),
            module=getattr(obj, "__module__", ""),
        )
        self._items[name] = comp
        self._by_params.setdefault(params, name)
        COMPONENTS.setdefault(params, (self.name_key, name))
        return comp

    def register(
        self, name: str, *, params: type | None = None, doc: str = "", traits: Iterable[str] = ()
    ) -> Callable[[T], T]:
        """Decorator: make ``obj`` selectable as ``name``; ``params`` defaults to ``obj`` itself (a dataclass)."""

        def deco(obj: T) -> T:
            self.add(name, obj, params if params is not None else obj, doc=doc, traits=traits)  # type: ignore[arg-type]
            return obj

        return deco

    def remove(self, name: str) -> None:
        """Forget a component (a plugin unloaded, or a test's toy after the test)."""
        comp = self._items.pop(name)
        if self._by_params.get(comp.params) == name:
            del self._by_params[comp.params]
            COMPONENTS.pop(comp.params, None)

    def discover(self) -> None:
        """Import every module of the registry's packages, once: their registrations fill it."""
        if self._discovered:
            return
        self._discovered = True
        for pkg_name in self.packages:
            pkg = importlib.import_module(pkg_name)
            for info in pkgutil.iter_modules(pkg.__path__, f"{pkg_name}."):
                importlib.import_module(info.name)

    # -------------------------------------------------------------- looking up

    def _ordered(self) -> list[Component[T]]:
        """The built-in components by module, then plugins', each module's in its own order.

        Not the order of registration: a module imported early (by a test, a
        plugin, another module) would move its components up the lists that
        errors, ``--help`` and the README show.
        """
        seq = {name: i for i, name in enumerate(self._items)}
        return sorted(
            self._items.values(), key=lambda c: (not c.module.startswith("vmexp."), c.module, seq[c.name])
        )

    def names(self) -> list[str]:
        self.discover()
        return [c.name for c in self._ordered()]

    def items(self) -> Iterator[Component[T]]:
        self.discover()
        yield from self._ordered()

    def __contains__(self, name: object) -> bool:
        self.discover()
        return name in self._items

    def get(self, name: Any, key: str = "") -> Component[T]:
        """The component called ``name``; an unknown name is an error listing the valid ones."""
        self.discover()
        comp = self._items.get(name) if isinstance(name, str) else None
        if comp is not None:
            return comp
        valid = ", ".join(c.name for c in self._ordered())
        hint = ""
        if isinstance(name, str) and name.lower() in self._items:
            hint = f" (names are lower case: {name.lower()})"
        raise self.error(f"{key or self.name_key}: {name!r} is not one of {valid}{hint}")

    def name_of(self, params: Any) -> str:
        """The name a parsed parameter object was registered under."""
        return self._by_params[type(params)]

    def component_of(self, params: Any) -> Component[T]:
        return self._items[self.name_of(params)]

    # -------------------------------------------------------------- parsing

    def parse(self, value: Any, where: str, *, typed: bool = False) -> Any:
        """The typed parameters of the component a mapping names (``{dist: lognormal, median: 1k}``)."""
        if not isinstance(value, Mapping):
            raise self.error(f"{where}: expected a mapping of keys, got {value!r}")
        name = value.get(self.name_key, self.default)
        if name is None:
            raise self.error(f"{where}.{self.name_key}: required: one of {', '.join(self.names())}")
        comp = self.get(name, f"{where}.{self.name_key}")
        params = {str(k): v for k, v in value.items() if k != self.name_key}
        return self.parse_params(comp, params, where, typed=typed)

    def parse_params(
        self, comp: Component[T], values: Mapping[str, Any], where: str, *, typed: bool = False
    ) -> Any:
        return parse_section(
            comp.params, values, where, self.error, what=f"{self.what} {comp.name}", typed=typed
        )

    def plain(self, params: Any, key: str) -> Iterator[tuple[str, Any, str, str | None]]:
        """settings.json's entries for a parsed component: its name, then its parameters."""
        yield f"{key}.{self.name_key}", self.name_of(params), "", None
        yield from to_plain(params, f"{key}.")


def import_plugins(modules: Iterable[str], key: str = "plugins") -> None:
    """Import the modules a run names in ``plugins``: their registrations add components."""
    for i, name in enumerate(modules):
        try:
            importlib.import_module(name)
        except ImportError as e:
            raise ConfigError(f"{key}[{i}]: cannot import {name!r} ({e})") from None


# The kinds of component. Each module that implements one registers it here.
POLICIES: Registry[Any] = Registry(
    "policy",
    "name",
    packages=("vmexp.kernel.policies",),
    doc="page replacement: which resident page to give up when a frame is needed",
)
ALLOCATORS: Registry[Any] = Registry(
    "allocator", "name", packages=("vmexp.libc",), doc="the C library's malloc over brk and mmap"
)
WORKLOAD_KINDS: Registry[Any] = Registry(
    "workload kind", "kind", packages=("vmexp.workload",), doc="what the processes do"
)
SIZE_DISTS: Registry[Any] = Registry(
    "sizes dist", "dist", packages=("vmexp.workload",), doc="allocation sizes of a generator"
)
LIFETIMES: Registry[Any] = Registry(
    "lifetime dist",
    "dist",
    packages=("vmexp.workload",),
    default="exponential",
    doc="how many allocation steps a block lives",
)
ACCESS_PATTERNS: Registry[Any] = Registry(
    "access pattern",
    "pattern",
    packages=("vmexp.workload",),
    default="none",
    doc="which pages of the live blocks a generator references",
)

REGISTRIES: dict[str, Registry[Any]] = {
    "policy": POLICIES,
    "allocator": ALLOCATORS,
    "workload": WORKLOAD_KINDS,
    "sizes": SIZE_DISTS,
    "lifetime": LIFETIMES,
    "access": ACCESS_PATTERNS,
}
