"""One small registry type for every kind of named thing: methods, models, datasets, explainers, metrics.

A :class:`Registry` is a read-only mapping of name -> entry in registration order (``reg["nm"]``,
``"nm" in reg``, ``list(reg)``, ``reg.values()``), plus ``register`` (refuses an empty or taken
name), ``get`` (an unknown name is a ``ValueError`` listing the registered ones), ``names`` and
``unregister`` (for tests that add a toy entry and take it away again). It imports nothing from
noisemod, so every layer can own a registry.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any, Generic, TypeVar

__all__ = ["Registry"]

T = TypeVar("T")
_MISSING: Any = object()


class Registry(Mapping[str, T], Generic[T]):
    """Name -> entry, in registration order.

    Args:
        kind: what an entry is, for messages (``"method"``: "unknown method 'x'; registered: ...").
    """

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, T] = {}
        self._checks: list[Callable[[str, T], None]] = []

    def register(self, name: str, entry: T) -> T:
        """Add ``entry`` under ``name``; ``ValueError`` naming it when the name is empty or taken, or
        when a check (:meth:`add_check`) refuses the entry. Returns ``entry``."""
        if not isinstance(name, str) or not name or name in self._entries:
            raise ValueError(f"cannot register {self.kind} {name!r}: the name is empty or taken")
        for check in self._checks:
            check(name, entry)
        self._entries[name] = entry
        return entry

    def unregister(self, name: str) -> T:
        """Remove ``name`` (an unknown one is a ``ValueError``) and return its entry."""
        self.get(name)
        return self._entries.pop(name)

    def get(self, name: str, default: Any = _MISSING) -> T:
        """The entry of ``name``. Unknown: ``default`` when one is given (as ``Mapping.get``), else a
        ``ValueError`` "unknown <kind> 'x'; registered: a, b"."""
        if name in self._entries:
            return self._entries[name]
        if default is not _MISSING:
            return default
        raise ValueError(f"unknown {self.kind} {name!r}; registered: {', '.join(self._entries)}")

    def names(self) -> list[str]:
        """The registered names, in registration order."""
        return list(self._entries)

    def add_check(self, check: Callable[[str, T], None]) -> None:
        """Refuse entries that ``check(name, entry)`` raises ``ValueError`` for: every entry registered
        from now on, and at once those registered before. A layer above the registry's own module
        uses it to hold the registry's entries to its rules (the config checks that a method's
        settings are method settings) without that module importing it."""
        for name, entry in self._entries.items():
            check(name, entry)
        self._checks.append(check)

    def __getitem__(self, name: str) -> T:
        return self._entries[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}: {', '.join(self._entries)})"
