"""Actors and compositions: scenarios put together from a catalogue.

A hand-written scenario covers the threads someone thought of.  An
:class:`Actor` is one operation of the system under test - in the kernel
model a kernel operation such as UFFDIO_MOVE, munmap or an rmap walk -
written once as a parameterised model thread over a shared world.  A
:class:`Catalogue` holds the actors that act on one kind of world, the
builder of that world and the variants its compositions run.  A
:class:`Composition` is a multiset of actors with their parameters: it *is*
a scenario, with a stable name built from its actors
(``page-idle+uffd-move(src=S)+munmap(vma=S)``), so every command that takes a
scenario takes a composition's name, and ``hunt`` searches over them.

Canonical order: a composition lists its actors in catalogue order, then by
parameters, whatever order they were given in; so one multiset has one name,
one thread order and one set of seed files.  Thread roles are the actors'
roles, numbered from the second of a kind (``reader``, ``reader2``).

What is left out: nothing here knows the kernel; the catalogue supplies the
world and the actors.  Parameters are named choices from a fixed list (the
objects of the shared world), not free values, so compositions can be
enumerated.
"""

from __future__ import annotations

import itertools
import re
import sys
from pathlib import Path
from typing import Any, Callable, Coroutine, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

import attrs

from fuzzrmap.environment import PLAIN, Environment
from fuzzrmap.hunks import Hunk
from fuzzrmap.scenario import Scenario, UnknownName, Variant, World


@attrs.frozen
class Param:
    """A parameter of an actor: its name and the values it may take (the first is the default)."""

    name: str
    choices: Tuple[str, ...] = attrs.field(converter=tuple)
    summary: str = ""


@attrs.frozen
class Actor:
    """One operation, as a model thread: ``run(world, **args)`` is its body.

    ``kind`` names it in compositions; ``role`` names its thread (a reader, a
    mover...); ``source`` cites the kernel (or other) code it follows;
    ``reads_rmap`` marks the rmap readers and walkers a hunt composition must
    contain at least one of; ``single`` an operation of which the system runs
    one at a time (a kernel thread such as ksmd), so a composition has at most
    one of it.
    """

    kind: str
    role: str
    summary: str
    source: str
    run: Callable[..., Coroutine]
    params: Tuple[Param, ...] = attrs.field(default=(), converter=tuple)
    reads_rmap: bool = False
    single: bool = False

    def defaults(self) -> Dict[str, str]:
        return {p.name: p.choices[0] for p in self.params}

    def casts(self) -> Iterator["Cast"]:
        """This actor with every combination of its parameters."""
        for values in itertools.product(*(p.choices for p in self.params)):
            yield Cast(self, tuple(zip((p.name for p in self.params), values)))


@attrs.frozen(order=False)
class Cast:
    """An actor with its parameter values: one thread of a composition."""

    actor: Actor
    args: Tuple[Tuple[str, str], ...] = attrs.field(converter=tuple)

    @property
    def name(self) -> str:
        if not self.args:
            return self.actor.kind
        return f"{self.actor.kind}({','.join(f'{k}={v}' for k, v in self.args)})"


_CAST = re.compile(r"^(?P<kind>[a-z0-9][a-z0-9_-]*)(?:\((?P<args>[^()]*)\))?$")


@attrs.frozen
class Catalogue:
    """The actors over one kind of world.

    ``build(globals)`` makes a fresh model world for each schedule from the
    ``environment``'s globals (for the kernel model: the ``Kernel``);
    ``world(model_world, threads)`` wraps it with the composition's threads
    into the :class:`~fuzzrmap.scenario.World` the environment expects (for
    the kernel model: with the folios its end-of-run checks look at).
    ``module`` is the module that defines the catalogue: a composition's
    seed files are fingerprinted from it.  ``quiet_checks`` are hunks that
    only add checks at points where no operation is in flight: they read
    what completed operations left, so ``hunt`` leaves them off when it asks
    which actors can communicate.
    """

    name: str
    summary: str
    actors: Tuple[Actor, ...] = attrs.field(converter=tuple)
    build: Callable[[Any], Any]
    world: Callable[[Any, List[Tuple[str, Callable[[], Coroutine]]]], World]
    variants: Tuple[Variant, ...] = attrs.field(converter=tuple)
    environment: Environment = PLAIN
    module: str = ""
    quiet_checks: Tuple[Hunk, ...] = attrs.field(default=(), converter=tuple)

    def actor(self, kind: str) -> Actor:
        for a in self.actors:
            if a.kind == kind:
                return a
        raise UnknownName(f"unknown actor {kind!r} (actors: {', '.join(a.kind for a in self.actors)})")

    def cast(self, text: str) -> Cast:
        """``kind`` or ``kind(name=value,...)``: missing parameters take their defaults."""
        m = _CAST.match(text.strip())
        if m is None:
            raise UnknownName(f"not an actor: {text!r} (write kind or kind(param=value,...))")
        actor = self.actor(m.group("kind"))
        args = actor.defaults()
        for item in filter(None, (m.group("args") or "").split(",")):
            key, sep, value = item.partition("=")
            param = next((p for p in actor.params if p.name == key.strip()), None)
            if not sep or param is None:
                raise UnknownName(f"actor {actor.kind} has no parameter {key.strip()!r} "
                                  f"(parameters: {', '.join(p.name for p in actor.params) or 'none'})")
            if value.strip() not in param.choices:
                raise UnknownName(f"{actor.kind}({param.name}=...) takes one of {', '.join(param.choices)}, "
                                  f"not {value.strip()!r}")
            args[param.name] = value.strip()
        return Cast(actor, tuple(args.items()))

    def compose(self, *casts: str) -> "Composition":
        """The composition of the given casts (``"munmap(vma=S)"``...), in canonical order."""
        if not casts:
            raise UnknownName("a composition needs at least one actor")
        return self._canonical(self.cast(c) for c in casts)

    def _canonical(self, casts: Iterable[Cast]) -> "Composition":
        order = {a.kind: i for i, a in enumerate(self.actors)}
        casts = tuple(sorted(casts, key=lambda c: (order[c.actor.kind], c.args)))
        for a in self.actors:
            if a.single and sum(1 for c in casts if c.actor is a) > 1:
                raise UnknownName(f"{a.kind} runs as one thread in the system ({a.role}): a composition has at most one")
        return Composition(self, casts)

    def parse(self, name: str) -> "Composition":
        """The composition a name made by :attr:`Composition.name` stands for."""
        return self.compose(*name.split("+"))

    def compositions(self, max_actors: int, kinds: Optional[Sequence[str]] = None) -> Iterator["Composition"]:
        """Every multiset of 1..max_actors casts (of ``kinds``, or all actors) with a reader or walker,
        and at most one cast of each ``single`` actor."""
        actors = [self.actor(k) for k in kinds] if kinds is not None else list(self.actors)
        casts = [c for a in actors for c in a.casts()]
        for n in range(1, max_actors + 1):
            for chosen in itertools.combinations_with_replacement(casts, n):
                if any(c.actor.reads_rmap for c in chosen) and \
                        not any(a.single and sum(1 for c in chosen if c.actor is a) > 1 for a in actors):
                    yield self._canonical(chosen)


@attrs.frozen
class Composition:
    catalogue: Catalogue
    casts: Tuple[Cast, ...] = attrs.field(converter=tuple)

    @property
    def name(self) -> str:
        return "+".join(c.name for c in self.casts)

    def roles(self) -> List[str]:
        seen: Dict[str, int] = {}
        roles = []
        for c in self.casts:
            seen[c.actor.role] = seen.get(c.actor.role, 0) + 1
            n = seen[c.actor.role]
            roles.append(c.actor.role if n == 1 else f"{c.actor.role}{n}")
        return roles

    def setup(self, globals_: Any) -> World:
        world = self.catalogue.build(globals_)
        threads = [(role, _body(cast, world)) for role, cast in zip(self.roles(), self.casts)]
        return self.catalogue.world(world, threads)

    def scenario(self, name: Optional[str] = None, spec: str = "composition", summary: Optional[str] = None,
                 variants: Optional[Sequence[Variant]] = None) -> Scenario:
        """This composition as a scenario (its own name unless a scenario file gives it another)."""
        module = sys.modules[self.catalogue.module]
        return Scenario(
            name=name or self.name,
            spec=spec,
            summary=summary or " vs ".join(c.actor.summary for c in self.casts),
            variants=tuple(variants) if variants is not None else self.catalogue.variants,
            setup=self.setup,
            environment=self.catalogue.environment,
            module=module.__name__,
            file=Path(module.__file__).resolve(),
        )


def _body(cast: Cast, world: Any) -> Callable[[], Coroutine]:
    kwargs = dict(cast.args)

    def body() -> Coroutine:
        return cast.actor.run(world, **kwargs)  # the actor's own coroutine: no wrapper to pass through per step
    return body
