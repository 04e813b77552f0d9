"""Regular expressions over digits, as libphonenumber's metadata writes them, turned into one automaton
that reads many numbers at once, a digit column at a time.

The metadata's national number and international prefix patterns use digits, classes, groups,
alternatives and bounded repeats only. Python's own regular expression parser reads them; a pattern with
anything else is refused (`Unsupported`), and its region takes libphonenumber's route.
"""

from __future__ import annotations

import itertools
import re._constants as sre_constants
import re._parser as sre_parser
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# The symbol after a number's last digit, in every column up to the width of the matrix.
END = 10
# More states than any region's patterns need (684, Argentina's, in the metadata of 2026): a bound on the
# work of building one, should the metadata ever write a pattern far larger.
MAX_STATES = 20_000
_DIGITS = frozenset(range(10))


class Unsupported(ValueError):
    """A pattern this automaton cannot read (an anchor, a lookaround, an unbounded repeat, not a digit)."""


class _Builder:
    """A nondeterministic automaton (Thompson's construction) of the patterns' parsed form."""

    def __init__(self) -> None:
        self.empty: list[list[int]] = []  # state -> states reached reading nothing
        self.steps: list[list[tuple[frozenset[int], int]]] = []  # state -> (digits, state) reached reading one

    def state(self) -> int:
        self.empty.append([])
        self.steps.append([])
        return len(self.empty) - 1

    def sequence(self, items, start: int) -> int:
        for op, argument in items:
            start = self.item(op, argument, start)
        return start

    def step(self, digits: frozenset[int], start: int) -> int:
        end = self.state()
        self.steps[start].append((digits, end))
        return end

    def item(self, op, argument, start: int) -> int:
        c = sre_constants
        if op is c.LITERAL:
            if not ord("0") <= argument <= ord("9"):
                raise Unsupported(f"the character {chr(argument)!r}")
            return self.step(frozenset([argument - ord("0")]), start)
        if op is c.IN:
            return self.step(_class_digits(argument), start)
        if op is c.CATEGORY and argument is c.CATEGORY_DIGIT:
            return self.step(_DIGITS, start)
        if op is c.SUBPATTERN:
            _group, add_flags, del_flags, items = argument
            if add_flags or del_flags:
                raise Unsupported("inline flags")
            return self.sequence(items, start)
        if op is c.BRANCH:
            end = self.state()
            for items in argument[1]:
                branch = self.state()
                self.empty[start].append(branch)
                self.empty[self.sequence(items, branch)].append(end)
            return end
        if op in (c.MAX_REPEAT, c.MIN_REPEAT):  # greedy or lazy: the same numbers match
            least, most, items = argument
            if most == c.MAXREPEAT:
                raise Unsupported("an unbounded repeat")
            for _ in range(least):
                start = self.sequence(items, start)
            end = self.state()
            self.empty[start].append(end)
            for _ in range(most - least):
                start = self.sequence(items, start)
                self.empty[start].append(end)
            return end
        raise Unsupported(str(op))

    def closure(self, states) -> frozenset[int]:
        reached, todo = set(states), list(states)
        while todo:
            for following in self.empty[todo.pop()]:
                if following not in reached:
                    reached.add(following)
                    todo.append(following)
        return frozenset(reached)


def _class_digits(items) -> frozenset[int]:
    c = sre_constants
    digits: set[int] = set()
    negated = False
    for op, argument in items:
        if op is c.NEGATE:
            negated = True
        elif op is c.LITERAL:
            digits.update({argument - ord("0")} & _DIGITS)
        elif op is c.RANGE:
            low, high = argument
            digits.update(d for d in _DIGITS if low <= d + ord("0") <= high)
        elif op is c.CATEGORY and argument is c.CATEGORY_DIGIT:
            digits.update(_DIGITS)
        else:
            raise Unsupported(f"{op} in a class")
    return frozenset(_DIGITS - digits) if negated else frozenset(digits)


@dataclass(frozen=True)
class DigitAutomaton:
    """Deterministic: state 0 matches nothing ever again, state 1 is the start. `table[state, symbol]` is the
    next state (symbols: the digits, then END, which leaves the state as it is); bit i of
    `accepts[state]` is set when pattern i matches all that was read."""

    table: np.ndarray
    accepts: np.ndarray

    @classmethod
    def of(cls, patterns: Sequence[str]) -> DigitAutomaton:
        """The automaton of up to 64 patterns (subset construction over the digits)."""
        if len(patterns) > 64:
            raise Unsupported("more than 64 patterns: their bits would not fit in accepts")
        builder = _Builder()
        start = builder.state()
        final: dict[int, int] = {}
        for bit, pattern in enumerate(patterns):
            first = builder.state()
            builder.empty[start].append(first)
            final[builder.sequence(sre_parser.parse(pattern), first)] = bit
        dead = frozenset()
        numbered = {dead: 0, builder.closure([start]): 1}
        found = [dead, builder.closure([start])]
        rows = [[0] * 10]
        for current in itertools.islice(found, 1, None):  # grows as it goes: each new state is visited
            row = []
            for digit in range(10):
                reached = builder.closure([after for state in current for digits, after in builder.steps[state]
                                           if digit in digits])
                if reached not in numbered:
                    if len(found) == MAX_STATES:
                        raise Unsupported(f"more than {MAX_STATES} states")
                    numbered[reached] = len(found)
                    found.append(reached)
                row.append(numbered[reached])
            rows.append(row)
        table = np.array(rows, dtype=np.int32)
        table = np.column_stack([table, np.arange(len(table), dtype=np.int32)])  # END: stay
        accepts = np.array([sum(1 << final[state] for state in states if state in final) for states in found],
                           dtype=np.uint64)
        return cls(table, accepts)

    def matched(self, digits: np.ndarray) -> np.ndarray:
        """For each row of `digits` (digit values, END after the number), the bits of the patterns that
        match the whole number."""
        state = np.ones(len(digits), dtype=np.int32)
        for column in digits.T:
            state = self.table[state, column]
        return self.accepts[state]

    def matches_a_start(self, digits: np.ndarray) -> np.ndarray:
        """For each row, whether some pattern matches the number's first digits (what `re.match` finds)."""
        state = np.ones(len(digits), dtype=np.int32)
        found = self.accepts[state] != 0
        for column in digits.T:
            state = self.table[state, column]
            found |= self.accepts[state] != 0
            if not state.any():  # every row past what a pattern could match
                break
        return found
