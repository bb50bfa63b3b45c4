"""A small, safe condition language for SOP playbooks: `not ("员工" in tags) and lead_score >= 30`.

No `eval`, no Python `ast`: a hand-written tokenizer and a recursive-descent parser compile the text
into a tree of closures once, when the playbook is loaded.

Grammar (lowest precedence first)::

    expr       := and_expr ("or" and_expr)*
    and_expr   := not_expr ("and" not_expr)*
    not_expr   := "not" not_expr | comparison
    comparison := operand [("==" | "!=" | "<" | "<=" | ">" | ">=" | "in" | "not" "in") operand]
    operand    := NUMBER | STRING | "true" | "false" | "null" | "[" [operand ("," operand)*] "]"
                | FUNCTION "(" [expr ("," expr)*] ")" | NAME ("." NAME)* | "(" expr ")"

Strings take "..." or '...' (a backslash escapes the next character); numbers are `12`, `-3`, `2.5`.
Functions: `has_tag("孕期")` and `has_any_tag("已购", "退款")`, which read `tags`.

Semantics, chosen so a condition never raises while the engine runs it:

- a dotted name is looked up in the facts mapping one segment at a time; anything missing is null;
- `x == null` is true when `x` is missing and `x != null` when it is present; every other comparison
  with a null operand is false (so `attributes.baby_age_months < 12` is false for an unknown age, and
  so is `stage != "沉默"` for an unknown stage);
- `<` `<=` `>` `>=` compare numbers with numbers and strings with strings; other pairs are false;
- `a in b` is membership in a list, a substring of a string, or a key of a mapping; `not in` is its
  negation, both false with a null operand;
- `and`, `or`, `not` and the final result use truthiness: null, false, 0, "" and [] are false.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["FUNCTIONS", "Condition", "ExpressionError", "compile_condition"]

MAX_LENGTH = 2000
MAX_DEPTH = 40

FUNCTIONS: Mapping[str, tuple[int, int | None]] = {"has_tag": (1, 1), "has_any_tag": (1, None)}
"""Function name -> (min args, max args or None for any)."""

_KEYWORDS = frozenset(("and", "or", "not", "in", "true", "false", "null"))
_COMPARISONS = frozenset(("==", "!=", "<", "<=", ">", ">="))
_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_NAME = re.compile(r"[^\W\d]\w*")
_ESCAPES = {"n": "\n", "t": "\t"}
# Operators people bring from other languages, with what to write instead.
_MISTAKES = {
    "&&": "use 'and' instead of '&&'",
    "||": "use 'or' instead of '||'",
    "=": "use '==' to compare",
    "!": "use 'not' instead of '!'",
}

Facts = Mapping[str, Any]
_Fn = Callable[[Facts], Any]


class ExpressionError(ValueError):
    """The condition is not valid."""

    def __init__(self, column: int, reason: str) -> None:
        self.column, self.reason = column, reason
        super().__init__(f"column {column}: {reason}")


@dataclass(frozen=True)
class Condition:
    """A compiled condition: `evaluate(facts)` is a bool and never raises; `names` are the facts it reads."""

    text: str
    names: frozenset[str]
    _fn: _Fn = field(repr=False, compare=False)

    def evaluate(self, facts: Facts) -> bool:
        """True when the condition holds for `facts`."""
        try:
            return _truthy(self._fn(facts))
        except (TypeError, ValueError, RecursionError):
            # Every operator already guards its types; this only catches odd fact values (an
            # unhashable key, a custom object) so a bad fact skips a step instead of killing a worker.
            return False


def compile_condition(text: str) -> Condition:
    """Parse and compile `text`; raises ExpressionError with the 1-based column of the problem."""
    if not isinstance(text, str):
        raise ExpressionError(1, "a condition must be a string")
    if len(text) > MAX_LENGTH:
        raise ExpressionError(MAX_LENGTH, f"a condition may be at most {MAX_LENGTH} characters")
    parser = _Parser(text, _tokenize(text))
    if parser.peek().kind == "end":
        raise ExpressionError(1, "the condition is empty")
    fn = parser.expr(0)
    token = parser.peek()
    if token.kind != "end":
        raise ExpressionError(token.column, f"unexpected {token.describe()} after a complete condition")
    return Condition(text, frozenset(parser.names), fn)


# ------------------------------------------------------------------------------------------ tokens


@dataclass(frozen=True)
class _Token:
    kind: str  # number, string, name, keyword, op, end
    value: Any
    column: int

    def describe(self) -> str:
        if self.kind == "end":
            return "end of condition"
        if self.kind == "string":
            return f"string {self.value!r}"
        return repr(str(self.value))


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    i = 0
    while i < len(text):
        ch = text[i]
        column = i + 1
        if ch.isspace():
            i += 1
        elif ch in "\"'":
            value, i = _string(text, i)
            tokens.append(_Token("string", value, column))
        elif ch.isdigit() or (ch == "-" and _negative_allowed(tokens) and text[i + 1 : i + 2].isdigit()):
            match = _NUMBER.match(text, i + (ch == "-"))
            assert match is not None
            literal = text[i : match.end()]
            tokens.append(_Token("number", float(literal) if "." in literal else int(literal), column))
            i = match.end()
            if i < len(text) and (text[i].isalpha() or text[i] == "_"):
                raise ExpressionError(i + 1, f"unexpected {text[i]!r} right after the number {literal}")
        elif match := _NAME.match(text, i):
            word = match.group(0)
            tokens.append(_Token("keyword" if word in _KEYWORDS else "name", word, column))
            i = match.end()
        else:
            two = text[i : i + 2]
            if two in ("==", "!=", "<=", ">="):
                tokens.append(_Token("op", two, column))
                i += 2
            elif two in _MISTAKES:
                raise ExpressionError(column, _MISTAKES[two])
            elif ch in "<>()[],.":
                tokens.append(_Token("op", ch, column))
                i += 1
            elif ch in _MISTAKES:
                raise ExpressionError(column, _MISTAKES[ch])
            else:
                raise ExpressionError(column, f"unexpected character {ch!r}")
    tokens.append(_Token("end", None, len(text) + 1))
    return tokens


def _negative_allowed(tokens: list[_Token]) -> bool:
    # A minus starts a number only where an operand may start: `x -1` is not "x minus 1" here.
    if not tokens:
        return True
    last = tokens[-1]
    if last.kind == "keyword":
        return last.value in ("and", "or", "not", "in")
    return last.kind == "op" and last.value not in (")", "]")


def _string(text: str, start: int) -> tuple[str, int]:
    quote = text[start]
    out: list[str] = []
    i = start + 1
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            out.append(_ESCAPES.get(text[i + 1], text[i + 1]))
            i += 2
        elif ch == quote:
            return "".join(out), i + 1
        else:
            out.append(ch)
            i += 1
    raise ExpressionError(start + 1, f"string starting here has no closing {quote}")


# ------------------------------------------------------------------------------------------ parser


class _Parser:
    def __init__(self, text: str, tokens: list[_Token]) -> None:
        self.text = text
        self.tokens = tokens
        self.pos = 0
        self.names: set[str] = set()

    def peek(self, ahead: int = 0) -> _Token:
        return self.tokens[min(self.pos + ahead, len(self.tokens) - 1)]

    def take(self) -> _Token:
        token = self.peek()
        self.pos += 1
        return token

    def at(self, kind: str, value: Any) -> bool:
        token = self.peek()
        return token.kind == kind and token.value == value

    def expect(self, value: str, what: str) -> _Token:
        token = self.peek()
        if token.kind != "op" or token.value != value:
            raise ExpressionError(token.column, f"expected {what}, found {token.describe()}")
        return self.take()

    def expr(self, depth: int) -> _Fn:
        if depth > MAX_DEPTH:
            raise ExpressionError(self.peek().column, f"nested more than {MAX_DEPTH} levels deep")
        left = self.and_expr(depth)
        while self.at("keyword", "or"):
            self.take()
            left = _or(left, self.and_expr(depth))
        return left

    def and_expr(self, depth: int) -> _Fn:
        left = self.not_expr(depth)
        while self.at("keyword", "and"):
            self.take()
            left = _and(left, self.not_expr(depth))
        return left

    def not_expr(self, depth: int) -> _Fn:
        if self.at("keyword", "not"):
            self.take()
            inner = self.not_expr(depth + 1)
            return lambda facts: not _truthy(inner(facts))
        return self.comparison(depth)

    def comparison(self, depth: int) -> _Fn:
        left, left_null = self.operand(depth)
        token = self.peek()
        if token.kind == "op" and token.value in _COMPARISONS:
            self.take()
            right, right_null = self.operand(depth)
            return _compare(token.value, left, right, left_null, right_null)
        if self.at("keyword", "in"):
            self.take()
            right, _ = self.operand(depth)
            return _membership(left, right, negate=False)
        if self.at("keyword", "not") and self.peek(1).kind == "keyword" and self.peek(1).value == "in":
            self.take()
            self.take()
            right, _ = self.operand(depth)
            return _membership(left, right, negate=True)
        if token.kind in ("number", "string", "name") or (
            token.kind == "keyword" and token.value in ("true", "false", "null")
        ):
            raise ExpressionError(
                token.column, f"expected an operator (and, or, ==, in, ...) before {token.describe()}"
            )
        return left

    def operand(self, depth: int) -> tuple[_Fn, bool]:
        """The operand's function and whether it is the literal `null`."""
        token = self.take()
        if token.kind in ("number", "string"):
            return _const(token.value), False
        if token.kind == "keyword":
            if token.value in ("true", "false"):
                return _const(token.value == "true"), False
            if token.value == "null":
                return _const(None), True
            raise ExpressionError(token.column, f"expected a value, found {token.describe()}")
        if token.kind == "name":
            if self.at("op", "("):
                return self.call(token, depth), False
            return self.name(token), False
        if token.kind == "op" and token.value == "(":
            inner = self.expr(depth + 1)
            self.expect(")", f"')' to close the '(' at column {token.column}")
            return inner, False
        if token.kind == "op" and token.value == "[":
            return self.list_literal(token, depth), False
        raise ExpressionError(token.column, f"expected a value, found {token.describe()}")

    def name(self, first: _Token) -> _Fn:
        parts = [first.value]
        while self.at("op", "."):
            self.take()
            token = self.take()
            if token.kind not in ("name", "keyword"):
                raise ExpressionError(token.column, f"expected a name after '.', found {token.describe()}")
            parts.append(token.value)
        self.names.add(".".join(parts))
        return _lookup(tuple(parts))

    def call(self, name: _Token, depth: int) -> _Fn:
        if name.value not in FUNCTIONS:
            known = ", ".join(sorted(FUNCTIONS))
            raise ExpressionError(name.column, f"unknown function {name.value!r}; known: {known}")
        self.take()  # (
        args: list[_Fn] = []
        if not self.at("op", ")"):
            args.append(self.expr(depth + 1))
            while self.at("op", ","):
                self.take()
                args.append(self.expr(depth + 1))
        self.expect(")", f"',' or ')' in the call of {name.value}")
        low, high = FUNCTIONS[name.value]
        if len(args) < low or (high is not None and len(args) > high):
            count = str(low) if low == high else f"at least {low}"
            raise ExpressionError(name.column, f"{name.value}() takes {count} argument(s), got {len(args)}")
        self.names.add("tags")
        return _has_tag(args)

    def list_literal(self, opening: _Token, depth: int) -> _Fn:
        items: list[_Fn] = []
        if not self.at("op", "]"):
            items.append(self.operand(depth + 1)[0])
            while self.at("op", ","):
                self.take()
                items.append(self.operand(depth + 1)[0])
        self.expect("]", f"',' or ']' to close the '[' at column {opening.column}")
        return lambda facts: [item(facts) for item in items]


# ------------------------------------------------------------------------------------------ values


def _truthy(value: Any) -> bool:
    return bool(value)  # None, false, 0, "" and [] are false, as documented


def _const(value: Any) -> _Fn:
    return lambda facts: value


def _lookup(parts: tuple[str, ...]) -> _Fn:
    def get(facts: Facts) -> Any:
        value: Any = facts
        for part in parts:
            if not isinstance(value, Mapping):
                return None
            value = value.get(part)
        return value

    return get


def _and(left: _Fn, right: _Fn) -> _Fn:
    return lambda facts: _truthy(left(facts)) and _truthy(right(facts))


def _or(left: _Fn, right: _Fn) -> _Fn:
    return lambda facts: _truthy(left(facts)) or _truthy(right(facts))


def _is_number(value: Any) -> bool:
    # bool is an int in Python, but `true < 2` is a mistake, not a comparison.
    return isinstance(value, int | float) and not isinstance(value, bool)


def _equal(a: Any, b: Any) -> bool:
    if _is_number(a) and _is_number(b):
        return bool(a == b)
    if type(a) is not type(b) and not (isinstance(a, list | tuple) and isinstance(b, list | tuple)):
        return False  # "1" is not 1, true is not 1
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def _order(op: str, a: Any, b: Any) -> bool:
    if not ((_is_number(a) and _is_number(b)) or (isinstance(a, str) and isinstance(b, str))):
        return False
    if op == "<":
        return bool(a < b)
    if op == "<=":
        return bool(a <= b)
    if op == ">":
        return bool(a > b)
    return bool(a >= b)


def _compare(op: str, left: _Fn, right: _Fn, left_null: bool, right_null: bool) -> _Fn:
    if op in ("==", "!=") and (left_null or right_null):
        # An explicit `== null` / `!= null` asks whether the fact is there at all.
        other = right if left_null else left
        present = op == "!="
        return lambda facts: (other(facts) is not None) == present

    def compare(facts: Facts) -> bool:
        a, b = left(facts), right(facts)
        if a is None or b is None:
            return False
        if op == "==":
            return _equal(a, b)
        if op == "!=":
            return not _equal(a, b)
        return _order(op, a, b)

    return compare


def _contains(item: Any, container: Any) -> bool | None:
    if item is None or container is None:
        return None
    if isinstance(container, str):
        return isinstance(item, str) and item in container
    # Sequences before Mapping: tags are a list, and an ABC check costs more than the search.
    if isinstance(container, list | tuple | set | frozenset):
        return any(_equal(item, element) for element in container)
    if isinstance(container, Mapping):
        return item in container
    return None


def _membership(left: _Fn, right: _Fn, *, negate: bool) -> _Fn:
    def check(facts: Facts) -> bool:
        found = _contains(left(facts), right(facts))
        if found is None:
            return False
        return not found if negate else found

    return check


def _has_tag(args: list[_Fn]) -> _Fn:
    tags = _lookup(("tags",))

    def check(facts: Facts) -> bool:
        have = tags(facts)
        return any(_contains(arg(facts), have) for arg in args)

    return check
