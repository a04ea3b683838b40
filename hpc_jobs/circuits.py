"""Reading OpenQASM 2.0 circuits: one function for the gateway and the runner.

The gateway calls :func:`load_circuit` when a job is submitted and the runner
calls it again inside the batch job, so a circuit accepted at submission is
the circuit that runs, and a circuit the runner would refuse is refused with
an HTTP error instead of a failed batch job.

Parsing is what :func:`qiskit.qasm2.loads` does, in its two steps: Qiskit's
Rust parser turns the source into bytecode, and
:func:`qiskit.qasm2.parse.from_bytecode` builds the circuit from it. Each
step's cost is bounded before it runs. A lexical pre-scan (regular
expressions over the source with ``//`` comments blanked; a safety bound, not
a parser) bounds what the Rust parser may produce and refuses what crashes
it, and ``include`` of anything but ``qelib1.inc``. Then one pass over the
bytecode (:func:`_check_cost`) prices the circuit's construction, inlining
and summary before any of it is done (:class:`CircuitLimits`).

Gate libraries. Qiskit's exporter (:func:`qiskit.qasm2.dumps`) writes
``include "qelib1.inc";`` and then uses gates that the original qelib1.inc
lacks (``swap``, ``cp``, ``sx``, ``rzz``, ``c3x``, ...). Those are read through
:data:`qiskit.qasm2.LEGACY_CUSTOM_INSTRUCTIONS`. A custom instruction, though,
*replaces* a file's own ``gate`` definition of the same name: Qiskit keeps the
library gate and uses the file's body only to check the signature. A file's
definition must win, so every name the file defines with ``gate`` is left out
of the custom instructions. ``opaque`` declarations keep the library meaning
when they name a library gate (that is what ``opaque`` is for); an opaque gate
outside the library has no definition and is refused.

Names. Aer and the transpiler choose a gate's meaning by its name, so a file
gate called ``swap`` (or ``unitary``) would silently run as Aer's. The loaded
circuit therefore has every file-defined gate inlined: it holds only Qiskit
library operations, and summaries describe what is simulated.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache, cached_property

from qiskit import QuantumCircuit, qasm2

# The Rust parser behind qiskit.qasm2.loads, called directly so the program's
# cost can be checked between parsing and building (see _parse).
from qiskit._accelerate import qasm2 as _qasm2_parser
from qiskit._accelerate.qasm2 import OpCode
from qiskit.circuit import (
    Barrier,
    CircuitInstruction,
    ControlFlowOp,
    Delay,
    Instruction,
    Measure,
    Reset,
)
from qiskit.qasm2.parse import from_bytecode
from qiskit.quantum_info import get_clifford_gate_names

__all__ = [
    "CircuitError",
    "CircuitLimits",
    "CircuitSummary",
    "ValidationBudget",
    "is_rust_panic",
    "load_circuit",
    "summarize",
    "validation_cost",
]

_QELIB1 = "qelib1.inc"


class CircuitError(ValueError):
    """An OpenQASM 2.0 program that QCOS refuses to run.

    ``message`` is the reason for a person, ``line`` (1-based) and ``column``
    (1-based, in characters) point into the submitted source, or are ``None``
    when the problem has no single place (the program's size, no
    measurements). Qiskit reports 0-based columns; they are converted.
    """

    #: Longer messages (a name from the program quoted whole) are cut here.
    MAX_MESSAGE = 500

    def __init__(self, message: str, line: int | None = None, column: int | None = None):
        self.message = message if len(message) <= self.MAX_MESSAGE else message[: self.MAX_MESSAGE - 3] + "..."
        self.line = line
        self.column = column
        super().__init__(str(self))

    def __str__(self) -> str:
        if self.line is None:
            return self.message
        if self.column is None:
            return f"line {self.line}: {self.message}"
        return f"line {self.line}, column {self.column}: {self.message}"


@dataclass(frozen=True)
class CircuitLimits:
    """Bounds checked before parsing, and on Qiskit's parse before the circuit is built.

    Validation runs inside the HTTP request, so these bounds keep any one
    program under about 2 s of CPU (see ``test_worst_cases_within_the_bounds_are_cheap``).

    ``max_qasm_bytes``: UTF-8 size of the source (1 MiB). ``max_qubits`` and
    ``max_clbits``: totals over all ``qreg``/``creg`` declarations (1024 each:
    the API's tiers stop at 100 qubits for state vectors, while stabilizer
    circuits of a few hundred qubits are cheap). ``max_register_size``: one
    register (1024). ``max_operations``: instructions after register
    broadcasts are expanded and the file's gates inlined (150,000).
    ``max_gate_definitions``: ``gate`` plus ``opaque`` statements (1,000;
    Qiskit's parser costs the square of their number). ``max_gate_nesting``:
    the longest chain of file gates calling file gates (64).
    ``max_statement_operators``: arithmetic operators (``+ - * / ^``) and
    opening parentheses in one statement (1,000; real programs use a few):
    Qiskit's parser keeps an expression inside a gate body as a tree as deep
    as its operator chain, and freeing a chain of about 200,000 overflows the
    C stack, killing the process after the request has been answered.
    ``max_validation_work``: the weighted cost of building, inlining and
    summarizing the circuit, in units of one operation (150,000): an
    operation weighs 1; an ``if`` 20 more (40 when it calls a file gate); a
    call of a file gate 3 (1 inside another gate); building a file gate's
    definition for parameter values not seen before 10, plus 2 per operation
    and 1 per 256 characters of its body, for the gate and for every call
    with parameters inside it.
    """

    max_qasm_bytes: int = 1 << 20
    max_qubits: int = 1024
    max_clbits: int = 1024
    max_register_size: int = 1024
    max_operations: int = 150_000
    max_gate_definitions: int = 1_000
    max_gate_nesting: int = 64
    max_statement_operators: int = 1_000
    max_validation_work: int = 150_000


@dataclass(frozen=True)
class CircuitSummary:
    """Shape of a parsed circuit, for the API and for choosing a method.

    ``depth`` and ``size`` are :meth:`QuantumCircuit.depth` and
    :meth:`QuantumCircuit.size` (top-level instructions, barriers excluded
    from depth, as Qiskit counts them); ``depth`` is computed when first
    read (it costs as much as parsing; submissions do not need it).
    ``gate_counts`` is
    :meth:`QuantumCircuit.count_ops` (name -> count, top level).
    ``is_clifford`` is true when every unitary operation is one of
    :func:`qiskit.quantum_info.get_clifford_gate_names`, so Aer's
    ``stabilizer`` method can run it; rotations at Clifford angles
    (``rz(pi/2)``) count as non-Clifford, which is conservative.
    """

    num_qubits: int
    num_clbits: int
    size: int
    gate_counts: dict[str, int] = field(default_factory=dict)
    is_clifford: bool = False
    circuit: QuantumCircuit | None = field(default=None, repr=False, compare=False)

    @cached_property
    def depth(self) -> int:
        return self.circuit.depth() if self.circuit is not None else 0


# --- the lexical pre-scan -------------------------------------------------

_COMMENT = re.compile(r"//[^\n]*")
_OPENQASM_VERSION = re.compile(r"\bOPENQASM\s+([0-9][0-9.]*)")
_SUPPORTED_VERSION = re.compile(r"2(?:\.[0-9]{1,6})?")
# Text PostgreSQL cannot store: NUL, and unpaired surrogates (not UTF-8).
_NOT_TEXT = re.compile("[\x00\ud800-\udfff]")
# Where Qiskit's lexer reads an integer: digits not inside a name, not part
# of a real (after ".", before "." or an exponent, or in an exponent), 20 or
# more of them (2**64 has 20 digits); shorter ones always fit.
_LONG_INTEGER = re.compile(r"(?<![A-Za-z0-9_.])(?<![eE][+-])[0-9]{20,}(?![0-9.eE])")
_MAX_INTEGER = (1 << 64) - 1
_DEFINITION = re.compile(r"\b(?:gate|opaque)\b")
_INCLUDE = re.compile(r"\binclude\b")
_QELIB1_INCLUDE = re.compile(r'include\s*"qelib1\.inc"')
_REGISTER_KEYWORD = re.compile(r"\b(qreg|creg)\b")
_REGISTER = re.compile(r"\b(qreg|creg)\s+([A-Za-z_][A-Za-z0-9_]*)\s*\[\s*([0-9]+)\s*\]")
_GATE_DEFINITION = re.compile(r"\bgate\s+([A-Za-z_][A-Za-z0-9_]*)")
# An identifier not followed by "[" is, when it names a register, a broadcast
# over the whole register.
_IDENTIFIER = re.compile(r"\b[A-Za-z_][A-Za-z0-9_]*\b(?!\s*\[)")
# Qiskit's QASM2ParseError messages start "<input>:LINE,COLUMN: ".
_QUOTED_SHOWN = 40
_LONG_QUOTED = re.compile("'([^'\n]{%d,})'" % (_QUOTED_SHOWN + 1))
_QISKIT_POSITION = re.compile(r"^\s*(?P<source>[^\n]*?):(?P<line>\d+),(?P<column>\d+):\s*(?P<message>.*)\Z", re.S)


def _blank_comments(source: str) -> str:
    """The source with ``//`` comments replaced by spaces, offsets unchanged."""
    return _COMMENT.sub(lambda match: " " * len(match.group()), source)


def _position(source: str, offset: int) -> tuple[int, int]:
    """1-based (line, column) of a character offset."""
    line = source.count("\n", 0, offset) + 1
    column = offset - (source.rfind("\n", 0, offset) + 1) + 1
    return line, column


def _error_at(source: str, offset: int, message: str) -> CircuitError:
    line, column = _position(source, offset)
    return CircuitError(message, line, column)


def _check_text(qasm: str) -> None:
    """Refuse characters that are not storable text (PostgreSQL refuses NUL)."""
    match = _NOT_TEXT.search(qasm)
    if match is not None:
        char = match.group()
        what = "a NUL character (U+0000)" if char == "\x00" else f"an unpaired surrogate (U+{ord(char):04X})"
        raise _error_at(qasm, match.start(), f"the program contains {what}; send plain text")


def _check_integers(code: str) -> None:
    """Refuse integer literals of 2**64 or more: Qiskit's lexer panics on them."""
    for match in _LONG_INTEGER.finditer(code):
        digits = match.group()
        if len(digits) > 20 or int(digits) > _MAX_INTEGER:
            shown = digits if len(digits) <= 24 else digits[:20] + "..."
            raise _error_at(
                code, match.start(), f"the integer {shown} is too large; integers must be below 2**64"
            )


@cache
def _busy_statement(operators: int) -> re.Pattern:
    """A statement (text between ``;``, ``{`` and ``}``) with more than
    ``operators`` operators and opening parentheses. Possessive runs, tried
    only where a statement starts: linear in the program's size."""
    return re.compile(r"(?:(?<=[;{}])|\A)(?:[^;{}+\-*/^(]*+[+\-*/^(]){%d}" % (operators + 1))


def _check_statement_operators(code: str, limits: CircuitLimits) -> None:
    match = _busy_statement(limits.max_statement_operators).search(code)
    if match is not None:
        start = match.start() + len(match.group()) - len(match.group().lstrip())
        raise _error_at(
            code, start, f"the statement has more than {limits.max_statement_operators} arithmetic operators"
            f" and opening parentheses; at most {limits.max_statement_operators} are allowed"
        )


def _check_definition_count(code: str, limits: CircuitLimits) -> None:
    definitions = _DEFINITION.findall(code)
    if len(definitions) > limits.max_gate_definitions:
        raise CircuitError(
            f"the program has {len(definitions)} gate definitions; at most"
            f" {limits.max_gate_definitions} are allowed"
        )


def _check_includes(code: str) -> None:
    for match in _INCLUDE.finditer(code):
        if not _QELIB1_INCLUDE.match(code, match.start()):
            raise _error_at(
                code,
                match.start(),
                'only include "qelib1.inc" is allowed; other include files are not read',
            )


def _check_registers(code: str, limits: CircuitLimits) -> dict[str, int]:
    """Register name -> size, refusing any size or total over ``limits``."""
    sizes: dict[str, int] = {}
    totals = {"qreg": 0, "creg": 0}
    caps = {"qreg": ("qubits", limits.max_qubits), "creg": ("classical bits", limits.max_clbits)}
    matched = 0
    for match in _REGISTER.finditer(code):
        matched += 1
        kind, name, digits = match.groups()
        # Compare the digit count first so a 10,000-digit size is not converted.
        size = int(digits) if len(digits) <= 18 else limits.max_register_size + 1
        if size > limits.max_register_size:
            raise _error_at(
                code,
                match.start(3),
                f"register '{name}' has {digits if len(digits) <= 18 else 'too many'} bits;"
                f" at most {limits.max_register_size} are allowed per register",
            )
        totals[kind] += size
        what, cap = caps[kind]
        if totals[kind] > cap:
            raise _error_at(
                code,
                match.start(),
                f"register '{name}' brings the program to {totals[kind]} {what};"
                f" at most {cap} are allowed",
            )
        sizes[name] = max(size, sizes.get(name, 0))
    if matched != len(_REGISTER_KEYWORD.findall(code)):
        # The parser accepts only "qreg name[size];"; anything else is an
        # error, reported here rather than risking an unbounded declaration.
        for keyword in _REGISTER_KEYWORD.finditer(code):
            if not _REGISTER.match(code, keyword.start()):
                raise _error_at(
                    code, keyword.start(), f"expected '{keyword.group()} name[size];'"
                )
    return sizes


def _check_operation_bound(code: str, register_sizes: dict[str, int], limits: CircuitLimits) -> None:
    """Refuse programs that could expand to more than ``max_operations``.

    Upper bound: one operation per ``;`` plus, for every bare use of a
    register name, that register's size (a broadcast). Gate parameters that
    share a register's name are counted too, so the bound only errs high.
    """
    bound = code.count(";")
    if register_sizes:
        for match in _IDENTIFIER.finditer(code):
            bound += register_sizes.get(match.group(), 0)
    if bound > limits.max_operations:
        raise CircuitError(
            f"the program can expand to about {bound} operations (register broadcasts"
            f" counted at full size); at most {limits.max_operations} are allowed"
        )


# --- parsing ----------------------------------------------------------------


def _custom_instructions(code: str) -> list[qasm2.CustomInstruction]:
    defined = set(_GATE_DEFINITION.findall(code))
    return [ci for ci in qasm2.LEGACY_CUSTOM_INSTRUCTIONS if ci.name not in defined]


def _shorten_quoted(match: re.Match) -> str:
    token = match.group(1)
    return f"'{token[:_QUOTED_SHOWN]}...' ({len(token)} characters)"


def _from_qiskit_error(error: Exception) -> CircuitError:
    # QiskitError.__str__ quotes the message; ``message`` is the bare text.
    text = str(getattr(error, "message", None) or error)
    # Qiskit quotes the offending token whole: a 1 MiB token would come back in the answer.
    text = _LONG_QUOTED.sub(_shorten_quoted, text)
    match = _QISKIT_POSITION.match(text)
    if match is None:
        return CircuitError(text.strip() or type(error).__name__)
    return CircuitError(
        match["message"].strip(), int(match["line"]), int(match["column"]) + 1
    )


_CONTROL_FLOW_CLASSES: dict[type, bool] = {}


def _is_control_flow(operation: Instruction) -> bool:
    # isinstance() against Qiskit's classes is slow; a circuit has few classes.
    cls = type(operation)
    known = _CONTROL_FLOW_CLASSES.get(cls)
    if known is None:
        known = _CONTROL_FLOW_CLASSES[cls] = isinstance(operation, ControlFlowOp)
    return known


def _operations(circuit: QuantumCircuit) -> Iterator[Instruction]:
    """Every operation, including those inside control-flow blocks."""
    pending = [circuit]
    while pending:
        for instruction in pending.pop().data:
            operation = instruction.operation
            yield operation
            if _is_control_flow(operation):
                pending.extend(operation.blocks)


_LIBRARY_CLASSES: dict[type, bool] = {}


def _is_library_operation(operation: Instruction) -> bool:
    """Qiskit's own gates and directives, which Aer and the transpiler know by name.

    Everything else the parser produces is a file's ``gate`` (with a body) or
    an ``opaque`` gate (without one). The answer depends only on the class.
    """
    cls = type(operation)
    known = _LIBRARY_CLASSES.get(cls)
    if known is None:
        known = (
            getattr(operation, "_standard_gate", None) is not None
            or isinstance(operation, (Measure, Reset, Barrier, Delay))
            or getattr(operation, "base_class", cls).__module__.startswith("qiskit.circuit.library.")
        )
        _LIBRARY_CLASSES[cls] = known
    return known


def _opaque_error(operation: Instruction, code: str) -> CircuitError:
    message = (
        f"gate '{operation.name}' is declared opaque and has no definition;"
        " the simulator cannot run it (define it with 'gate')"
    )
    declaration = re.search(rf"\bopaque\s+{re.escape(operation.name)}\b", code)
    if declaration is None:
        return CircuitError(message)
    return _error_at(code, declaration.start(), message)


# One level of a file gate's body: (operation, qubit indices, clbit indices),
# the indices into the gate's own arguments.
_Body = list[tuple[Instruction, tuple[int, ...], tuple[int, ...]]]


def _template_key(operation: Instruction) -> tuple:
    # Within one file a gate is fixed by its name and evaluated parameters.
    return (operation.name, *operation.params)


def _body(gate: Instruction, bodies: dict[tuple, _Body], code: str) -> _Body:
    """``gate``'s definition, one level deep, built once per (name, parameters)."""
    key = _template_key(gate)
    body = bodies.get(key)
    if body is None:
        definition = gate.definition
        if definition is None:
            raise _opaque_error(gate, code)
        qubit_index = {bit: i for i, bit in enumerate(definition.qubits)}
        clbit_index = {bit: i for i, bit in enumerate(definition.clbits)}
        body = [
            (
                instruction.operation,
                tuple(qubit_index[q] for q in instruction.qubits),
                tuple(clbit_index[c] for c in instruction.clbits),
            )
            for instruction in definition.data
        ]
        bodies[key] = body
    return body


def _too_many_operations(limits: CircuitLimits) -> CircuitError:
    return CircuitError(
        f"the circuit expands to more than {limits.max_operations} operations"
        " once its gate definitions are inlined"
    )


def _inline_call(
    out: QuantumCircuit,
    gate: Instruction,
    qubits: tuple,
    clbits: tuple,
    bodies: dict[tuple, _Body],
    limits: CircuitLimits,
    code: str,
    count: int,
) -> int:
    """Append the library operations of one file-gate call to ``out``; the new count.

    Depth first with a stack (not recursion): every call in the expansion is
    visited once and maps its arguments one level, so the cost is the number
    of calls and operations, whatever the nesting depth.
    """
    stack = [(iter(_body(gate, bodies, code)), qubits, clbits)]
    while stack:
        body, call_qubits, call_clbits = stack[-1]
        item = next(body, None)
        if item is None:
            stack.pop()
            continue
        inner, qubit_indices, clbit_indices = item
        inner_qubits = tuple(call_qubits[i] for i in qubit_indices)
        inner_clbits = tuple(call_clbits[i] for i in clbit_indices)
        if _is_library_operation(inner):
            # _append skips the argument checks that append() repeats for
            # every instruction; the parser has already made them.
            out._append(CircuitInstruction(inner, inner_qubits, inner_clbits))
            count += 1
            if count > limits.max_operations:
                raise _too_many_operations(limits)
        else:
            stack.append((iter(_body(inner, bodies, code)), inner_qubits, inner_clbits))
    return count


def _inline_file_gates(
    circuit: QuantumCircuit, limits: CircuitLimits, code: str, bodies: dict[tuple, _Body] | None = None
) -> QuantumCircuit:
    """The circuit with every file-defined gate replaced by its body, recursively.

    Aer and the transpiler pick a gate's meaning by its *name*: a file's own
    ``gate swap a,b { x a; x b; }`` would run as Aer's swap, and a file's
    ``gate unitary a { ... }`` would be read as Aer's ``unitary``. After
    inlining, only Qiskit library operations remain, so names cannot lie.
    Raises :class:`CircuitError` for an opaque gate without a definition and
    when nesting expands the circuit past ``limits.max_operations``.
    """
    if all(_is_control_flow(operation) or _is_library_operation(operation) for operation in _operations(circuit)):
        return circuit
    bodies = {} if bodies is None else bodies
    out = circuit.copy_empty_like()
    count = 0
    for instruction in circuit.data:
        operation = instruction.operation
        if _is_control_flow(operation):
            # Blocks bind their bits by position, so each is inlined on its own.
            operation = operation.replace_blocks(
                [_inline_file_gates(block, limits, code, bodies) for block in operation.blocks]
            )
        elif not _is_library_operation(operation):
            count = _inline_call(
                out, operation, instruction.qubits, instruction.clbits, bodies, limits, code, count
            )
            continue
        out._append(CircuitInstruction(operation, instruction.qubits, instruction.clbits))
        count += 1
    if count > limits.max_operations:
        raise _too_many_operations(limits)
    return out


# --- the cost of a parsed program, before Qiskit builds it --------------------

# Validation cost in units of one library operation (Qiskit's parse, the
# circuit's construction, our checks and the summary: 8-12 us here). The
# weights were measured with tests/test_circuits.py's worst cases
# (test_worst_cases_within_the_bounds_are_cheap).
#: A conditional (``if``) operation: Qiskit builds an if_else block for each.
_CONDITIONAL_COST = 20
#: A conditional call of a file gate: its block is inlined on its own.
_CONDITIONAL_CALL_COST = 20
#: A call of a file gate in the program itself: Qiskit creates a gate object
#: and copies its body's bytecode.
_TOP_LEVEL_CALL_COST = 3
#: A call of a file gate inside another one, visited while inlining.
_NESTED_CALL_COST = 1
#: Building a gate's definition as a circuit (once per gate and parameter
#: values): this much, plus two per operation in its body, plus one per
#: ``_BODY_CHARACTERS_PER_UNIT`` characters of its body (Qiskit evaluates the
#: body's parameter expressions).
_DEFINITION_COST = 10
_BODY_OPERATION_COST = 2
_BODY_CHARACTERS_PER_UNIT = 256
#: Inside a gate, a barrier or a call of another file gate costs one more
#: unit per this many qubits it names: inlining maps each of them, and a
#: barrier over 1024 qubits is an object of 1024 (0.4 ms, not 10 us).
_QUBITS_PER_UNIT = 16
# Sums are capped: exponential nesting must not build huge integers.
_CAP = 1 << 62

_GATE_HEADER = re.compile(r"\bgate\s+([A-Za-z_][A-Za-z0-9_]*)\s*(\([^(){};]*\))?[^{}]*\{([^{}]*)\}")


@dataclass
class _GateCost:
    """What calling one file gate costs (see :func:`_check_cost`)."""

    has_parameters: bool
    build: int  # cost units of building its definition once
    operations: int = 0  # library operations, fully expanded
    calls: int = 0  # file-gate calls in its expansion, nested ones included
    # Cost units of the definitions that a call with new parameter values
    # builds: its own, and those of every call with parameters inside it,
    # whose values may differ from call to call.
    new_builds: int = 0
    nesting: int = 1  # 1: a body of library operations only
    # Cost units of mapping qubits while inlining one call (see _QUBITS_PER_UNIT).
    mapping: int = 0


def _gate_headers(code: str) -> dict[str, tuple[bool, int]]:
    """Gate name -> (takes parameters, body length in characters), from the source."""
    return {
        name: (bool(parameters.strip("() \t\r\n")), len(body))
        for name, parameters, body in _GATE_HEADER.findall(code)
    }


def _too_costly(limits: CircuitLimits, allowed: int, operations: int, calls: int, conditionals: int) -> CircuitError:
    return CircuitError(
        f"the circuit is too costly to check: its first {operations} operations, {calls} calls of the"
        f" file's own gates and {conditionals} conditional operations already weigh more than {allowed}"
        f" (an operation weighs 1, an 'if' {_CONDITIONAL_COST} more, a call of a file gate"
        f" {_NESTED_CALL_COST} to {_TOP_LEVEL_CALL_COST}, a barrier or call inside a gate 1 more per"
        f" {_QUBITS_PER_UNIT} qubits, building a gate's definition for new"
        f" parameter values {_DEFINITION_COST} plus {_BODY_OPERATION_COST} per operation in its body)"
    )


def _check_cost(bytecode: list, library_size: int, code: str, limits: CircuitLimits, allowed: int) -> tuple[int, int]:
    """Refuse a parsed program whose circuit would be too costly to build and check.

    ``bytecode``: Qiskit's parse of the program, read once (its length was
    bounded by the lexical pre-scan). ``library_size``: how many gate ids
    Qiskit gives library gates before the file's own (custom instructions
    plus ``U`` and ``CX``); the numbering mirrors
    :func:`qiskit.qasm2.parse.from_bytecode`. ``allowed``: the most cost
    units the program may weigh.

    Checks the nesting depth of every gate definition, the number of library
    operations once every file gate is expanded (every call counted, whatever
    its parameters), and the weighted cost of building, inlining and
    summarizing that circuit. Definitions are built once per gate and
    parameter values (see :func:`_body`); a call with parameters inside a
    gate is assumed to bring new values each time. Returns (cost units,
    calls of file gates).
    """
    headers = _gate_headers(code)
    gates: list[_GateCost | None] = [None] * library_size  # None: a library gate
    seen: set[tuple] = set()  # (gate id, parameter values) of top-level calls
    operations = calls = conditionals = work = 0

    ops = iter(bytecode)
    for op in ops:
        opcode = op.opcode
        if opcode == OpCode.Gate or opcode == OpCode.ConditionedGate:
            gate_id, parameters = op.operands[0], op.operands[1]
            gate = gates[gate_id]
            if gate is None:
                operations += 1
                work += 1
            else:
                operations += gate.operations
                calls += 1 + gate.calls
                work += gate.operations + _TOP_LEVEL_CALL_COST + _NESTED_CALL_COST * gate.calls + gate.mapping
                if gate.has_parameters:
                    key = (gate_id, *parameters)
                    if key not in seen:
                        seen.add(key)
                        work += gate.new_builds
            if opcode == OpCode.ConditionedGate:
                conditionals += 1
                work += _CONDITIONAL_COST if gate is None else _CONDITIONAL_COST + _CONDITIONAL_CALL_COST
        elif opcode == OpCode.ConditionedMeasure or opcode == OpCode.ConditionedReset:
            conditionals += 1
            operations += 1
            work += 1 + _CONDITIONAL_COST
        elif opcode == OpCode.DeclareGate:
            name = op.operands[0]
            has_parameters, characters = headers.get(name, (True, 0))
            gate = _GateCost(has_parameters, _DEFINITION_COST + characters // _BODY_CHARACTERS_PER_UNIT)
            for inner in ops:
                if inner.opcode == OpCode.EndDeclareGate:
                    break
                gate.build += _BODY_OPERATION_COST
                if inner.opcode == OpCode.Barrier:
                    gate.operations += 1
                    gate.mapping = min(_CAP, gate.mapping + len(inner.operands[0]) // _QUBITS_PER_UNIT)
                    continue
                callee = gates[inner.operands[0]] if inner.opcode == OpCode.Gate else None
                if callee is None:  # a library gate
                    gate.operations += 1
                    continue
                gate.mapping = min(
                    _CAP, gate.mapping + callee.mapping + len(inner.operands[2]) // _QUBITS_PER_UNIT)
                gate.operations = min(_CAP, gate.operations + callee.operations)
                gate.calls = min(_CAP, gate.calls + 1 + callee.calls)
                if callee.has_parameters:
                    gate.new_builds = min(_CAP, gate.new_builds + callee.new_builds)
                gate.nesting = max(gate.nesting, callee.nesting + 1)
            gate.new_builds = min(_CAP, gate.new_builds + gate.build)
            if gate.nesting > limits.max_gate_nesting:
                definition = re.search(rf"\bgate\s+{re.escape(name)}\b", code)
                message = (
                    f"gate '{name}' nests gate definitions {gate.nesting} deep;"
                    f" at most {limits.max_gate_nesting} levels are allowed"
                )
                raise CircuitError(message) if definition is None else _error_at(code, definition.start(), message)
            # Without parameters a gate is built once, wherever it is called.
            work += gate.build
            gates.append(gate)
        elif opcode == OpCode.DeclareOpaque:
            # Not a library gate: the inliner refuses it when it is used.
            gates.append(_GateCost(has_parameters=False, build=0, operations=1))
        elif opcode == OpCode.SpecialInclude:
            gates.extend([None] * len(op.operands[0]))
        elif opcode == OpCode.DeclareQreg or opcode == OpCode.DeclareCreg:
            pass
        else:  # Measure, Reset, Barrier
            operations += 1
            work += 1
        if operations > limits.max_operations:
            raise _too_many_operations(limits)
        if work > allowed:
            raise _too_costly(limits, allowed, operations, calls, conditionals)
    return work, calls


def is_rust_panic(error: BaseException) -> bool:
    """Whether ``error`` is a panic in Qiskit's Rust code, raised as
    ``pyo3_runtime.PanicException``: a ``BaseException`` that no ``except
    Exception`` catches, and whose class cannot be imported by name."""
    cls = type(error)
    return cls.__name__ == "PanicException" and cls.__module__ == "pyo3_runtime"


@dataclass
class _Parsed:
    """A program read by Qiskit's Rust parser and found affordable."""

    code: str  # the source with comments blanked
    bytecode: list
    custom_instructions: list[qasm2.CustomInstruction]
    work: int  # cost units
    calls: int  # calls of file gates in the expansion


def _parse(qasm: str, limits: CircuitLimits, allowed: int) -> _Parsed:
    """The lexical pre-scan, Qiskit's Rust parse into bytecode, and the cost check.

    The first two steps of :func:`qiskit.qasm2.loads` (the bytecode is what
    :func:`qiskit.qasm2.parse.from_bytecode` turns into a circuit), with the
    checks that bound each next step before it runs. Raises
    :class:`CircuitError` only.
    """
    _check_text(qasm)
    size = len(qasm.encode("utf-8"))
    if size > limits.max_qasm_bytes:
        raise CircuitError(
            f"the program is {size} bytes; at most {limits.max_qasm_bytes} are allowed"
        )
    code = _blank_comments(qasm)
    version = _OPENQASM_VERSION.search(code)
    if version is not None and not _SUPPORTED_VERSION.fullmatch(version.group(1)):
        shown = version.group(1) if len(version.group(1)) <= 12 else version.group(1)[:12] + "..."
        raise _error_at(code, version.start(), f"OpenQASM {shown} is not supported; send OpenQASM 2.0")
    _check_includes(code)
    register_sizes = _check_registers(code, limits)
    _check_integers(code)
    _check_statement_operators(code, limits)
    _check_definition_count(code, limits)
    _check_operation_bound(code, register_sizes, limits)

    custom_instructions = _custom_instructions(code)
    with _qiskit_errors("Qiskit's OpenQASM parser could not read the program"):
        bytecode = list(
            _qasm2_parser.bytecode_from_string(
                qasm,
                # Nothing is searched: qelib1.inc is built into Qiskit's parser
                # and every other include was refused above.
                [],
                [
                    _qasm2_parser.CustomInstruction(ci.name, ci.num_params, ci.num_qubits, ci.builtin)
                    for ci in custom_instructions
                ],
                (),
                False,
            )
        )
    names = {ci.name for ci in custom_instructions}
    library_size = len(custom_instructions) + ("U" not in names) + ("CX" not in names)
    work, calls = _check_cost(bytecode, library_size, code, limits, allowed)
    return _Parsed(code, bytecode, custom_instructions, work, calls)


@contextmanager
def _qiskit_errors(what: str) -> Iterator[None]:
    """Turn whatever Qiskit raises into :class:`CircuitError`, a Rust panic included."""
    try:
        yield
    except CircuitError:
        raise
    except qasm2.QASM2ParseError as error:
        raise _from_qiskit_error(error) from None
    except (RecursionError, MemoryError) as error:
        raise CircuitError(f"the program is too deeply nested or too large ({type(error).__name__})") from None
    except Exception as error:  # Qiskit's circuit builder raises several types.
        raise CircuitError(f"{what}: {error}") from None
    except BaseException as error:
        if not is_rust_panic(error):
            raise
        raise CircuitError(f"{what} ({error})") from None


def validation_cost(qasm: str, limits: CircuitLimits = CircuitLimits()) -> int:
    """What :func:`load_circuit` would spend on ``qasm``, in cost units, without building it.

    Runs the pre-scan and Qiskit's Rust parse (cheap: linear in the source)
    but not the circuit's construction. Raises :class:`CircuitError` for a
    program that :func:`load_circuit` refuses before building (syntax, bounds,
    cost over ``limits.max_validation_work``).
    """
    return _parse(qasm, limits, limits.max_validation_work).work


class ValidationBudget:
    """Cost units that several :func:`load_circuit` calls share (a batch).

    ``remaining`` starts at ``total`` and goes down by each accepted
    circuit's cost (see :class:`CircuitLimits`); a circuit that would need
    more than what remains is refused, so validating a batch costs at most
    ``total`` units however its circuits are made.
    """

    def __init__(self, total: int) -> None:
        self.total = total
        self.remaining = total

    def __repr__(self) -> str:
        return f"ValidationBudget(total={self.total}, remaining={self.remaining})"


def load_circuit(
    qasm: str, limits: CircuitLimits = CircuitLimits(), *, budget: ValidationBudget | None = None
) -> QuantumCircuit:
    """Parse and check an OpenQASM 2.0 program; the circuit QCOS will simulate.

    ``qasm`` is the program text. Only ``include "qelib1.inc";`` is allowed
    (read from Qiskit's built-in copy; no file is ever opened); Qiskit's
    extended gate set (:data:`qiskit.qasm2.LEGACY_CUSTOM_INSTRUCTIONS`) is
    available, and the file's own ``gate`` definitions take precedence over
    it.

    Cost is bounded before it is spent: a lexical pre-scan checks the size,
    the text (no NUL, no unpaired surrogate: PostgreSQL could not store it),
    integer literals (below 2**64: larger ones crash Qiskit's lexer), the
    register sizes, the number of gate definitions and an upper bound on the
    operation count; then Qiskit's Rust parser reads the program into
    bytecode, whose expansion (nesting depth, operations, weighted work, see
    :class:`CircuitLimits`) is checked before any circuit is built from it.

    Raises :class:`CircuitError` (with line and column where there is one
    place to point at) for: a program over the limits; an include of any
    other file; any OpenQASM syntax or semantic error Qiskit reports; use of
    an ``opaque`` gate that has no definition; a program with no ``measure``
    (Aer would return no counts). No other exception escapes, not even a
    panic of Qiskit's Rust code (which is a ``BaseException``).

    ``budget``: cost units shared with other calls (a batch); the program may
    use at most what remains of it, and what it uses is taken from it.

    The returned circuit has the file's own gates inlined (see the module
    docstring); its registers and bit order are the file's.
    """
    allowed = limits.max_validation_work if budget is None else min(limits.max_validation_work, budget.remaining)
    parsed = _parse(qasm, limits, allowed)
    with _qiskit_errors("the program could not be turned into a circuit"):
        circuit = from_bytecode(parsed.bytecode, parsed.custom_instructions)
    if circuit.num_qubits > limits.max_qubits or circuit.num_clbits > limits.max_clbits:
        raise CircuitError(
            f"the circuit has {circuit.num_qubits} qubits and {circuit.num_clbits} classical bits;"
            f" at most {limits.max_qubits} and {limits.max_clbits} are allowed"
        )
    if len(circuit.data) > limits.max_operations:
        raise CircuitError(
            f"the circuit has {len(circuit.data)} operations; at most {limits.max_operations} are allowed"
        )
    if parsed.calls:
        # Qiskit builds a file gate's body only now, when asked for it.
        with _qiskit_errors("a gate definition could not be expanded"):
            circuit = _inline_file_gates(circuit, limits, parsed.code)
    _check_operations(circuit)
    if budget is not None:
        budget.remaining -= parsed.work
    return circuit


def _check_operations(circuit: QuantumCircuit) -> None:
    """Refuse a circuit that measures nothing, compares a register with a value
    it cannot hold, or has a parameter that is not a finite number."""
    measures = False
    for operation in _operations(circuit):
        name = operation.name
        if name == "measure":
            measures = True
        elif name == "if_else":
            condition = getattr(operation, "condition", None)
            if isinstance(condition, tuple) and len(condition) == 2 and isinstance(condition[1], int):
                target, value = condition
                width = len(target) if hasattr(target, "__len__") else 1
                if not 0 <= value < (1 << width):
                    # Aer compares modulo 2**width and would run the branch wrongly.
                    raise CircuitError(
                        f"if compares a {width}-bit register with {value}, a value it can never hold"
                    )
        for parameter in operation.params:
            if isinstance(parameter, (int, float)) and not math.isfinite(parameter):
                # Overflowing expressions like 1e308*10 evaluate to inf; the
                # simulator would run them and return meaningless counts.
                raise CircuitError(f"gate {name} has a parameter that is not a finite number")
    if not measures:
        raise CircuitError("the circuit measures no qubits; add measure statements")


_CLIFFORD_GATES = frozenset(get_clifford_gate_names())


_NOT_GATE_CLASSES: dict[type, bool] = {}


def _is_not_a_gate(operation: Instruction) -> bool:
    """Control flow, measurements, resets, barriers and delays (cached per class)."""
    cls = type(operation)
    known = _NOT_GATE_CLASSES.get(cls)
    if known is None:
        known = _NOT_GATE_CLASSES[cls] = isinstance(operation, (ControlFlowOp, Measure, Reset, Barrier, Delay))
    return known


def summarize(circuit: QuantumCircuit) -> CircuitSummary:
    """Counts and the Clifford test for a circuit from :func:`load_circuit`.

    The circuit is the one that runs: the file's own gates are already
    inlined, so ``gate_counts`` names only Qiskit library operations.
    """
    is_clifford = all(
        _is_not_a_gate(operation) or (operation.name in _CLIFFORD_GATES and _is_library_operation(operation))
        for operation in _operations(circuit)
    )
    return CircuitSummary(
        num_qubits=circuit.num_qubits,
        num_clbits=circuit.num_clbits,
        size=circuit.size(),
        gate_counts={name: int(count) for name, count in circuit.count_ops().items()},
        is_clifford=is_clifford,
        circuit=circuit,
    )


def simulates_shot_by_shot(circuit: QuantumCircuit) -> bool:
    """Whether Aer must simulate each shot separately: a qubit is reset, or
    operated on after being measured, or the circuit branches on results.
    Such circuits cost their operations once per shot, not once in all."""
    measured: set = set()
    for instruction in circuit.data:
        name = instruction.operation.name
        if name in ("reset", "if_else", "while_loop", "switch_case"):
            return True
        if name == "measure":
            measured.update(instruction.qubits)
        elif name != "barrier" and measured.intersection(instruction.qubits):
            return True
    return False
