"""The one attribution rule: which row of a report a cost belongs to.

A module can be reachable under several names (``self.a = self.b = conv``, one ``Linear``
placed in two blocks). Every module belongs to its **first name** in
``model.named_modules(remove_duplicate=False)`` order (as with fvcore's
``ancestor_mode("owner")``); its other names are **aliases**: their rows say ``alias_of``
that first name and hold no counts (they show the module's output shape and field), nor do
the rows below them. Each cost is then owned by exactly one row and by
that row's ancestors *by name* (the prefixes of its first name):

- an op (its MACs, element-wise ops, the bytes autograd saves for it) belongs to the
  innermost module running it, under that module's first name, and to every prefix of
  that name; a module called several times counts every call;
- a leaf module's outputs (``activation_bytes``) belong to it and its prefixes;
- a parameter belongs to the first module, in that order, that holds it (the name
  ``model.named_parameters()`` gives it), and to its prefixes: a tensor shared by two
  modules counts once.

So over all rows the self costs add up to the totals, and every row (a container that never
runs, such as ``nn.ModuleList``, included) equals the sum of its own part and its
children's rows. The prefixes of a first name are first names themselves (``named_modules``
walks depth first, so a module seen again is reached again with all its subtree), so an
alias never owns anything. A parent that calls a module owned elsewhere (``block2`` calling
``block1.fc``) does not count that call: its owner's row does.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover - no torch import for the rule itself
    from torch import nn

Named = list[tuple[str, "nn.Module"]]
"""``model.named_modules(remove_duplicate=False)``, listed once."""


def aliases(named: Iterable[tuple[str, Any]]) -> dict[str, str]:
    """Each alias name -> the first name of its module (first names are not keys)."""
    first: dict[int, str] = {}
    out: dict[str, str] = {}
    for name, module in named:
        owner = first.setdefault(id(module), name)
        if owner != name:
            out[name] = owner
    return out


def chain(name: str) -> tuple[str, ...]:
    """``name`` and its prefixes, outermost first: ``'a.b' -> ('', 'a', 'a.b')``."""
    if not name:
        return ("",)
    parts = name.split(".")
    return ("", *(".".join(parts[: i + 1]) for i in range(len(parts))))


def is_leaf(module: nn.Module) -> bool:
    """A module without children (its outputs are what ``activation_bytes`` sums)."""
    return not any(child is not None for child in module._modules.values())


def parameter_owners(named: Named) -> dict[str, list[nn.Parameter]]:
    """The parameters each module owns by the rule (not its subtree's), by first name."""
    seen: set[int] = set()
    owned: dict[str, list[nn.Parameter]] = defaultdict(list)
    alias = aliases(named)
    for name, module in named:
        if name in alias:
            continue
        for p in module._parameters.values():
            if p is not None and id(p) not in seen:
                seen.add(id(p))
                owned[name].append(p)
    return owned


def subtree_params(named: Named) -> dict[str, int]:
    """Parameter counts of every row by the rule: each tensor once, in its owner's row and
    the rows of that name's prefixes (aliases hold none)."""
    counts: dict[str, int] = defaultdict(int)
    for name, params in parameter_owners(named).items():
        size = sum(p.numel() for p in params)
        for prefix in chain(name):
            counts[prefix] += size
    return counts
