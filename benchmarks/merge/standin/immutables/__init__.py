"""A stand-in for the `immutables` package (not in the local package stores),
enough for mergekit's ImmutableMap: a read-only, hashable mapping. Used only to
run mergekit beside dfmerge in benchmarks/merge (see install_mergekit.sh)."""
from collections.abc import Mapping


class Map(Mapping):
    __slots__ = ("_d", "_h")

    def __init__(self, *args, **kwargs):
        self._d = dict(*args, **kwargs)
        self._h = None

    def __getitem__(self, key):
        return self._d[key]

    def __iter__(self):
        return iter(self._d)

    def __len__(self):
        return len(self._d)

    def __hash__(self):
        if self._h is None:
            self._h = hash(frozenset(self._d.items()))
        return self._h

    def __eq__(self, other):
        return isinstance(other, Mapping) and dict(self._d) == dict(other)

    def __repr__(self):
        return f"immutables.Map({self._d!r})"

    def set(self, key, value):
        d = dict(self._d)
        d[key] = value
        return Map(d)

    def delete(self, key):
        d = dict(self._d)
        del d[key]
        return Map(d)

    def __class_getitem__(cls, item):
        return cls
