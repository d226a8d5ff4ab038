"""Name -> class tables for models, datasets and metrics.

Keys are short, lowercase and unique; each entry carries a one-line description and its paper reference so that
`zoo list` can say what is in the zoo. Lookups of unknown keys raise a `ZooError` listing the valid keys.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

from zoo.errors import ZooError

T = TypeVar("T")
_KEY = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass(frozen=True)
class Entry(Generic[T]):
    key: str
    obj: T
    description: str
    paper: str


class Registry(Generic[T]):
    """A validated table of named components (torch-fidelity style `register_*` functions)."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, Entry[T]] = {}

    def register(self, key: str, *, description: str, paper: str = "") -> Callable[[T], T]:
        """Decorator registering `obj` under `key`.

        Args:
            key: lowercase identifier (`[a-z][a-z0-9_]*`), unique within this registry.
            description: one line shown by `zoo list`.
            paper: citation (title, venue, year, link) of what the component implements.
        """
        if not _KEY.match(key):
            raise ValueError(f"{self.kind} key {key!r} must be lowercase letters, digits and underscores")
        if not description or "\n" in description:
            raise ValueError(f"{self.kind} {key!r} needs a one-line description")

        def decorator(obj: T) -> T:
            existing = self._entries.get(key)
            if existing is not None and existing.obj is not obj:
                raise ValueError(f"{self.kind} key {key!r} is already registered to {existing.obj!r}")
            self._entries[key] = Entry(key, obj, description, paper)
            if isinstance(obj, type):
                obj.registry_key = key  # the class knows its own key (checkpoints record it)
            return obj

        return decorator

    def get(self, key: str) -> T:
        return self.entry(key).obj

    def entry(self, key: str) -> Entry[T]:
        try:
            return self._entries[key]
        except KeyError:
            valid = ", ".join(sorted(self._entries)) or "(none registered)"
            raise ZooError(f"unknown {self.kind} {key!r}; valid {self.kind}s: {valid}") from None

    def keys(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, key: str) -> bool:
        return key in self._entries

    def __iter__(self) -> Iterator[Entry[T]]:
        return iter(self._entries[k] for k in self.keys())


MODELS: Registry[type] = Registry("model")
DATASETS: Registry[type] = Registry("dataset")
METRICS: Registry[type] = Registry("metric")

register_model = MODELS.register
register_dataset = DATASETS.register
register_metric = METRICS.register


def load_all() -> None:
    """Import the packages whose modules register themselves, so the tables are complete."""
    import zoo.datasets  # noqa: F401
    import zoo.metrics  # noqa: F401
    import zoo.models  # noqa: F401
