"""A narrow, safe reader of the CEL device selectors people write in ResourceClaims and DeviceClasses.

gpuplace does not evaluate CEL (the DRA allocator does, and it is the only authority). It recognises the
few forms that say which GPU a request wants, and reports everything else as unread:

    device.driver == "gpu.nvidia.com"
    device.attributes["gpu.nvidia.com"].type == "gpu"                 (or 'mig')
    device.attributes["gpu.nvidia.com"].productName == "NVIDIA L40S"  (==, in [...], matches, startsWith,
                                                                       endsWith, contains, lowerAscii())
    device.attributes["gpu.nvidia.com"].profile == "1g.10gb"          (MIG profile; == or in)
    device.attributes["gpu.nvidia.com"].architecture == "Hopper"
    device.capacity["gpu.nvidia.com"].memory.compareTo(quantity("40Gi")) >= 0   (or isGreaterThan(...))

joined by `&&` (each part narrows) or, for product and profile terms, by `||`. A part gpuplace cannot read
only narrows further what the readable parts allow, so the readable parts stay sound; a selector with no
readable part says nothing about the tier (unknown, never an error). Text that is not CEL at all
(unbalanced brackets or quotes) is reported as such. Why not a full CEL library: the only CEL package on
PyPI (cel-python) evaluates expressions, but gpuplace has no devices to evaluate against at admission; what
it needs is the *set of catalog GPUs* an expression admits, which comes from recognising these forms.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

NVIDIA_DRIVER = "gpu.nvidia.com"
MAX_EXPRESSION_CHARS = 10 * 1024  # the apiserver's own limit on one selector expression

_STR = r"""(?:"((?:[^"\\]|\\.)*)"|'((?:[^'\\]|\\.)*)')"""
_DOMAIN = r"""\[\s*(?:"([\w./-]+)"|'([\w./-]+)')\s*\]"""
_NAME = r"""(?:\.(\w+)|\[\s*(?:"(\w+)"|'(\w+)')\s*\])"""
_ATTR = re.compile(rf"^device\.attributes\s*{_DOMAIN}\s*{_NAME}(\.lowerAscii\(\))?$")
_CAP = re.compile(rf"^device\.capacity\s*{_DOMAIN}\s*{_NAME}$")
_STRING_LIT = re.compile(rf"^{_STR}$")
_METHOD = re.compile(rf"^(.*?)\.(matches|startsWith|endsWith|contains)\(\s*{_STR}\s*\)$")
_IN_LIST = re.compile(r"^(.*?)\s+in\s+\[(.*)\]$")
_QUANTITY = rf"quantity\(\s*{_STR}\s*\)"
_COMPARE = re.compile(rf"^(.*?)\.compareTo\(\s*{_QUANTITY}\s*\)\s*(>=|>|==)\s*0$")
_GREATER = re.compile(rf"^(.*?)\.isGreaterThan\(\s*{_QUANTITY}\s*\)$")
_NOT_LESS = re.compile(rf"^!\s*(.*?)\.isLessThan\(\s*{_QUANTITY}\s*\)$")


@dataclass(frozen=True)
class StringTest:
    """One test on a string attribute: `op` is ==, matches, startsWith, endsWith or contains."""

    op: str
    value: str
    lower: bool = False  # the attribute went through lowerAscii() first

    def __call__(self, text: str) -> bool:
        subject = text.lower() if self.lower else text
        if self.op == "==":
            return subject == self.value
        if self.op == "matches":
            try:
                return re.search(self.value, subject) is not None  # CEL matches() is RE2, unanchored
            except re.error:
                return False
        if self.op == "startsWith":
            return subject.startswith(self.value)
        if self.op == "endsWith":
            return subject.endswith(self.value)
        return self.value in subject


@dataclass
class Reading:
    """What the readable parts of one or more selectors say. Each tuple of tests is a disjunction; the
    tuples of one field are a conjunction (every selector of a request must hold)."""

    products: list[tuple[StringTest, ...]] = field(default_factory=list)
    profiles: list[tuple[StringTest, ...]] = field(default_factory=list)
    architectures: list[tuple[StringTest, ...]] = field(default_factory=list)
    device_type: str | None = None  # "gpu" | "mig"
    drivers: list[str] = field(default_factory=list)
    memory_min_bytes: int | None = None
    unread: list[str] = field(default_factory=list)  # parts not understood (they only narrow further)
    invalid: list[str] = field(default_factory=list)  # expressions that are not CEL: why

    @property
    def says_anything(self) -> bool:
        return bool(self.products or self.profiles or self.architectures or self.memory_min_bytes)

    def merge(self, other: Reading) -> None:
        self.products += other.products
        self.profiles += other.profiles
        self.architectures += other.architectures
        self.device_type = other.device_type or self.device_type
        self.drivers += other.drivers
        if other.memory_min_bytes is not None:
            self.memory_min_bytes = max(self.memory_min_bytes or 0, other.memory_min_bytes)
        self.unread += other.unread
        self.invalid += other.invalid


def read_selector(expression: str) -> Reading:
    """What one CEL expression says about the device; never raises."""
    reading = Reading()
    if not isinstance(expression, str) or not expression.strip():
        reading.invalid.append("empty expression")
        return reading
    if len(expression) > MAX_EXPRESSION_CHARS:
        reading.invalid.append(f"expression longer than {MAX_EXPRESSION_CHARS} characters")
        return reading
    problem = _balance_problem(expression)
    if problem:
        reading.invalid.append(problem)
        return reading
    for part in _split(_strip_parens(" ".join(expression.split())), "&&"):
        _read_conjunct(_strip_parens(part), reading)
    return reading


def _read_conjunct(text: str, reading: Reading) -> None:
    alternatives = _split(text, "||")
    if len(alternatives) > 1:
        # A disjunction is readable only when every branch tests the same string attribute.
        parsed = [_string_term(_strip_parens(a)) for a in alternatives]
        names = {p[0] for p in parsed if p is not None}
        if None in parsed or len(names) != 1 or not _store_tests(reading, names.pop(), parsed):
            reading.unread.append(text)
        return
    if _driver_or_type(text, reading) or _memory_floor(text, reading):
        return
    term = _string_term(text)
    if term is None or not _store_tests(reading, term[0], [term]):
        reading.unread.append(text)


def _store_tests(
    reading: Reading, name: str, parsed: list[tuple[str, tuple[StringTest, ...]] | None]
) -> bool:
    tests = tuple(t for p in parsed if p is not None for t in p[1])
    target = {
        "productName": reading.products,
        "profile": reading.profiles,
        "architecture": reading.architectures,
    }.get(name)
    if target is None:
        return False
    target.append(tests)
    return True


def _driver_or_type(text: str, reading: Reading) -> bool:
    left, _, right = text.partition("==")
    if not right:
        return False
    left, right = left.strip(), right.strip()
    literal = _literal(right)
    if left == "device.driver" and literal is not None:
        reading.drivers.append(literal)
        return True
    attr = _attribute(left)
    if attr is not None and attr[0] == "type" and literal is not None:
        reading.device_type = literal
        return True
    return False


def _memory_floor(text: str, reading: Reading) -> bool:
    for pattern in (_COMPARE, _GREATER, _NOT_LESS):
        m = pattern.match(text)
        if m is None:
            continue
        cap = _CAP.match(m.group(1).strip())
        if cap is None or _group(cap, 3, 4, 5) != "memory":
            return False
        value = quantity_int(m.group(2) if m.group(2) is not None else m.group(3))
        if value is None:
            return False
        reading.memory_min_bytes = max(reading.memory_min_bytes or 0, value)
        return True
    return False


def _string_term(text: str) -> tuple[str, tuple[StringTest, ...]] | None:
    """(attribute name, tests) of `ATTR == "x"`, `"x" == ATTR`, `ATTR in [...]`, `ATTR.matches("x")`..."""
    m = _METHOD.match(text)
    if m is not None:
        attr = _attribute(m.group(1).strip())
        value = m.group(3) if m.group(3) is not None else m.group(4)
        if attr is None or value is None:
            return None
        return attr[0], (StringTest(m.group(2), _unescape(value), attr[1]),)
    m = _IN_LIST.match(text)
    if m is not None:
        attr = _attribute(m.group(1).strip())
        values = [_literal(v.strip()) for v in _split(m.group(2), ",") if v.strip()]
        if attr is None or not values or None in values:
            return None
        return attr[0], tuple(StringTest("==", v, attr[1]) for v in values if v is not None)
    left, op, right = text.partition("==")
    if not op:
        return None
    left, right = left.strip(), right.strip()
    attr, literal = _attribute(left), _literal(right)
    if attr is None:
        attr, literal = _attribute(right), _literal(left)
    if attr is None or literal is None:
        return None
    return attr[0], (StringTest("==", literal, attr[1]),)


def _attribute(text: str) -> tuple[str, bool] | None:
    """(name, lowered) of device.attributes["gpu.nvidia.com"].<name>[.lowerAscii()]."""
    m = _ATTR.match(text)
    if m is None or _group(m, 1, 2) != NVIDIA_DRIVER:
        return None
    name = _group(m, 3, 4, 5)
    return (name, m.group(6) is not None) if name else None


def _literal(text: str) -> str | None:
    m = _STRING_LIT.match(text)
    if m is None:
        return None
    return _unescape(m.group(1) if m.group(1) is not None else m.group(2))


def _group(m: re.Match[str], *indices: int) -> str | None:
    return next((m.group(i) for i in indices if m.group(i) is not None), None)


def _unescape(value: str) -> str:
    return re.sub(r"\\(.)", r"\1", value)


def quantity_int(text: object) -> int | None:
    """A Kubernetes quantity ("40Gi", "81559Mi") as a whole number, or None when it is not one."""
    if text is None:
        return None
    from kubernetes.utils import parse_quantity  # the client's own parser, imported only when needed

    try:
        return int(parse_quantity(text))
    except (ValueError, TypeError, ArithmeticError):
        return None


# --- structure: quotes and brackets, top-level splitting ------------------------------------------------

_PAIRS = {")": "(", "]": "[", "}": "{"}


def _scan(text: str, visit: Callable[[int, int], None]) -> str | None:
    """Walk the text outside string literals, calling visit(index, depth); the problem if unbalanced."""
    depth, quote, i, stack = 0, "", 0, []
    while i < len(text):
        ch = text[i]
        if quote:
            if ch == "\\":
                i += 2
                continue
            if ch == quote:
                quote = ""
        elif ch in "\"'":
            quote = ch
        elif ch in "([{":
            stack.append(ch)
            depth += 1
        elif ch in ")]}":
            if not stack or stack.pop() != _PAIRS[ch]:
                return f"unbalanced {ch!r} at character {i + 1}"
            depth -= 1
        else:
            visit(i, depth)
        i += 1
    if quote:
        return "unterminated string literal"
    if stack:
        return f"unclosed {stack[-1]!r}"
    return None


def _balance_problem(text: str) -> str | None:
    return _scan(text, lambda _i, _d: None)


def _split(text: str, sep: str) -> list[str]:
    cuts: list[int] = []

    def visit(i: int, depth: int) -> None:
        if depth == 0 and text.startswith(sep, i) and (not cuts or i >= cuts[-1] + len(sep)):
            cuts.append(i)

    _scan(text, visit)
    parts, start = [], 0
    for cut in cuts:
        parts.append(text[start:cut])
        start = cut + len(sep)
    parts.append(text[start:])
    return [p.strip() for p in parts]


def _strip_parens(text: str) -> str:
    text = text.strip()
    while text.startswith("(") and text.endswith(")") and _encloses(text):
        text = text[1:-1].strip()
    return text


def _encloses(text: str) -> bool:
    """True when the first '(' closes at the last character (not `(a) && (b)`)."""
    closes_at: list[int] = []
    depth = 0
    quote = ""
    for i, ch in enumerate(text):
        if quote:
            if ch == quote and text[i - 1] != "\\":
                quote = ""
            continue
        if ch in "\"'":
            quote = ch
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0:
                closes_at.append(i)
                break
    return bool(closes_at) and closes_at[0] == len(text) - 1
