"""Reading OpenQASM 2.0 circuits: one function for the gateway and the runner.

The gateway calls :func:`load_circuit` when a job is submitted and the runner
calls it again inside the batch job, so a circuit accepted at submission is
the circuit that runs, and a circuit the runner would refuse is refused with
an HTTP error instead of a failed batch job.

Parsing is :func:`qiskit.qasm2.loads`. Before it runs, a lexical pre-scan
(regular expressions over the source with ``//`` comments blanked) bounds
what the parser may allocate and refuses ``include`` of anything but
``qelib1.inc``; it is a safety bound, not a parser.

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
from dataclasses import dataclass, field

from qiskit import QuantumCircuit, qasm2
from qiskit.circuit import (
    Barrier,
    CircuitInstruction,
    ControlFlowOp,
    Delay,
    Instruction,
    Measure,
    Reset,
)
from qiskit.quantum_info import get_clifford_gate_names

__all__ = [
    "CircuitError",
    "CircuitLimits",
    "CircuitSummary",
    "load_circuit",
    "summarize",
]

_QELIB1 = "qelib1.inc"


class CircuitError(ValueError):
    """An OpenQASM 2.0 program that QCOS refuses to run.

    ``message`` is the reason for a person, ``line`` (1-based) and ``column``
    (1-based, in characters) point into the submitted source, or are ``None``
    when the problem has no single place (the program's size, no
    measurements). Qiskit reports 0-based columns; they are converted.
    """

    def __init__(self, message: str, line: int | None = None, column: int | None = None):
        self.message = message
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
    """Bounds checked before (and again after) parsing.

    ``max_qasm_bytes``: UTF-8 size of the source (1 MiB). ``max_qubits`` and
    ``max_clbits``: totals over all ``qreg``/``creg`` declarations (1024 each:
    the API's tiers stop at 100 qubits for state vectors, while stabilizer
    circuits of a few hundred qubits are cheap). ``max_register_size``: one
    register (1024). ``max_operations``: instructions after register
    broadcasts are expanded and the file's gates inlined (200,000: validation
    runs inside the HTTP request, and Qiskit parses and inlines roughly
    130,000 operations a second here, so the worst case stays near 1.5 s).
    """

    max_qasm_bytes: int = 1 << 20
    max_qubits: int = 1024
    max_clbits: int = 1024
    max_register_size: int = 1024
    max_operations: int = 200_000


@dataclass(frozen=True)
class CircuitSummary:
    """Shape of a parsed circuit, for the API and for choosing a method.

    ``depth`` and ``size`` are :meth:`QuantumCircuit.depth` and
    :meth:`QuantumCircuit.size` (top-level instructions, barriers excluded
    from depth, as Qiskit counts them). ``gate_counts`` is
    :meth:`QuantumCircuit.count_ops` (name -> count, top level).
    ``is_clifford`` is true when every unitary operation is one of
    :func:`qiskit.quantum_info.get_clifford_gate_names`, so Aer's
    ``stabilizer`` method can run it; rotations at Clifford angles
    (``rz(pi/2)``) count as non-Clifford, which is conservative.
    """

    num_qubits: int
    num_clbits: int
    depth: int
    size: int
    gate_counts: dict[str, int] = field(default_factory=dict)
    is_clifford: bool = False


# --- the lexical pre-scan -------------------------------------------------

_COMMENT = re.compile(r"//[^\n]*")
_OPENQASM_VERSION = re.compile(r"\bOPENQASM\s+([0-9][0-9.]*)")
_INCLUDE = re.compile(r"\binclude\b")
_QELIB1_INCLUDE = re.compile(r'include\s*"qelib1\.inc"')
_REGISTER_KEYWORD = re.compile(r"\b(qreg|creg)\b")
_REGISTER = re.compile(r"\b(qreg|creg)\s+([A-Za-z_][A-Za-z0-9_]*)\s*\[\s*([0-9]+)\s*\]")
_GATE_DEFINITION = re.compile(r"\bgate\s+([A-Za-z_][A-Za-z0-9_]*)")
# An identifier not followed by "[" is, when it names a register, a broadcast
# over the whole register.
_IDENTIFIER = re.compile(r"\b[A-Za-z_][A-Za-z0-9_]*\b(?!\s*\[)")
# Qiskit's QASM2ParseError messages start "<input>:LINE,COLUMN: ".
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


def _from_qiskit_error(error: Exception) -> CircuitError:
    # QiskitError.__str__ quotes the message; ``message`` is the bare text.
    text = str(getattr(error, "message", None) or error)
    match = _QISKIT_POSITION.match(text)
    if match is None:
        return CircuitError(text.strip() or type(error).__name__)
    return CircuitError(
        match["message"].strip(), int(match["line"]), int(match["column"]) + 1
    )


def _operations(circuit: QuantumCircuit) -> Iterator[Instruction]:
    """Every operation, including those inside control-flow blocks."""
    pending = [circuit]
    while pending:
        for instruction in pending.pop().data:
            operation = instruction.operation
            yield operation
            if isinstance(operation, ControlFlowOp):
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


# One inlined gate call: (operation, qubit indices, clbit indices), the
# indices into the gate's own arguments.
_Template = list[tuple[Instruction, tuple[int, ...], tuple[int, ...]]]


def _template_key(operation: Instruction) -> tuple:
    # Within one file a gate is fixed by its name and evaluated parameters.
    return (operation.name, *operation.params)


def _expand(
    operation: Instruction, templates: dict[tuple, _Template], limits: CircuitLimits, code: str
) -> _Template:
    """A file gate's body with nested file gates inlined, as a template.

    Every gate expanded on the way is stored in ``templates``, so each
    (name, parameters) is built once even when calls nest exponentially. A
    stack rather than recursion, as files may nest gates arbitrarily deep.
    """
    # Frame: (body instructions, body qubit -> own index, body clbit -> own
    # index, key, own template so far, this call's qubits and clbits as
    # indices of the caller's arguments)
    stack: list[tuple] = []

    def push(gate: Instruction, qubits: tuple[int, ...], clbits: tuple[int, ...]) -> None:
        body = gate.definition
        if body is None:
            raise _opaque_error(gate, code)
        stack.append(
            (
                iter(body.data),
                {bit: i for i, bit in enumerate(body.qubits)},
                {bit: i for i, bit in enumerate(body.clbits)},
                _template_key(gate),
                [],
                qubits,
                clbits,
            )
        )

    push(operation, tuple(range(operation.num_qubits)), tuple(range(operation.num_clbits)))
    while True:
        instructions, qubit_map, clbit_map, key, template, call_qubits, call_clbits = stack[-1]
        instruction = next(instructions, None)
        if instruction is None:
            stack.pop()
            templates[key] = template
            if not stack:
                return template
            caller_template = stack[-1][4]
            _extend(caller_template, template, call_qubits, call_clbits, limits)
            continue
        inner = instruction.operation
        qubits = tuple(qubit_map[q] for q in instruction.qubits)
        clbits = tuple(clbit_map[c] for c in instruction.clbits)
        if _is_library_operation(inner):
            template.append((inner, qubits, clbits))
            if len(template) > limits.max_operations:
                raise _too_many_operations(limits)
            continue
        known = templates.get(_template_key(inner))
        if known is None:
            push(inner, qubits, clbits)
        else:
            _extend(template, known, qubits, clbits, limits)


def _extend(
    template: _Template, called: _Template, qubits: tuple[int, ...], clbits: tuple[int, ...], limits: CircuitLimits
) -> None:
    """Append ``called`` to ``template``, with its indices mapped through the call's arguments."""
    if len(template) + len(called) > limits.max_operations:
        raise _too_many_operations(limits)
    template.extend(
        (inner, tuple(qubits[i] for i in qubit_indices), tuple(clbits[i] for i in clbit_indices))
        for inner, qubit_indices, clbit_indices in called
    )


def _too_many_operations(limits: CircuitLimits) -> CircuitError:
    return CircuitError(
        f"the circuit expands to more than {limits.max_operations} operations"
        " once its gate definitions are inlined"
    )


def _inline_file_gates(circuit: QuantumCircuit, limits: CircuitLimits, code: str) -> QuantumCircuit:
    """The circuit with every file-defined gate replaced by its body, recursively.

    Aer and the transpiler pick a gate's meaning by its *name*: a file's own
    ``gate swap a,b { x a; x b; }`` would run as Aer's swap, and a file's
    ``gate unitary a { ... }`` would be read as Aer's ``unitary``. After
    inlining, only Qiskit library operations remain, so names cannot lie.
    Raises :class:`CircuitError` for an opaque gate without a definition and
    when nesting expands the circuit past ``limits.max_operations``.
    """
    if all(
        isinstance(operation, ControlFlowOp) or _is_library_operation(operation)
        for operation in _operations(circuit)
    ):
        return circuit
    out = circuit.copy_empty_like()
    templates: dict[tuple, _Template] = {}
    count = 0
    for instruction in circuit.data:
        operation = instruction.operation
        if isinstance(operation, ControlFlowOp):
            # Blocks bind their bits by position, so each is inlined on its own.
            operation = operation.replace_blocks(
                [_inline_file_gates(block, limits, code) for block in operation.blocks]
            )
        elif not _is_library_operation(operation):
            template = templates.get(_template_key(operation))
            if template is None:
                template = _expand(operation, templates, limits, code)
            count += len(template)
            if count > limits.max_operations:
                raise _too_many_operations(limits)
            qubits, clbits = instruction.qubits, instruction.clbits
            for inner, qubit_indices, clbit_indices in template:
                # _append skips the argument checks that append() repeats for
                # every instruction; the parser has already made them.
                out._append(
                    CircuitInstruction(
                        inner,
                        tuple(qubits[i] for i in qubit_indices),
                        tuple(clbits[i] for i in clbit_indices),
                    )
                )
            continue
        out._append(CircuitInstruction(operation, instruction.qubits, instruction.clbits))
        count += 1
    return out


def load_circuit(qasm: str, limits: CircuitLimits = CircuitLimits()) -> QuantumCircuit:
    """Parse and check an OpenQASM 2.0 program; the circuit QCOS will simulate.

    ``qasm`` is the program text. Only ``include "qelib1.inc";`` is allowed
    (read from Qiskit's built-in copy; no file is ever opened); Qiskit's
    extended gate set (:data:`qiskit.qasm2.LEGACY_CUSTOM_INSTRUCTIONS`) is
    available, and the file's own ``gate`` definitions take precedence over
    it. Size, register sizes and an upper bound on the operation count are
    checked against ``limits`` before parsing.

    Raises :class:`CircuitError` (with line and column where there is one
    place to point at) for: a program over the limits; an include of any
    other file; any OpenQASM syntax or semantic error Qiskit reports; use of
    an ``opaque`` gate that has no definition; gate definitions that expand
    past ``limits.max_operations``; a program with no ``measure`` (Aer would
    return no counts). No other exception escapes.

    The returned circuit has the file's own gates inlined (see the module
    docstring); its registers and bit order are the file's.
    """
    size = len(qasm.encode("utf-8", errors="surrogatepass"))
    if size > limits.max_qasm_bytes:
        raise CircuitError(
            f"the program is {size} bytes; at most {limits.max_qasm_bytes} are allowed"
        )
    code = _blank_comments(qasm)
    version = _OPENQASM_VERSION.search(code)
    if version is not None and not version.group(1).startswith("2"):
        raise _error_at(code, version.start(), f"OpenQASM {version.group(1)} is not supported; send OpenQASM 2.0")
    _check_includes(code)
    register_sizes = _check_registers(code, limits)
    _check_operation_bound(code, register_sizes, limits)

    try:
        circuit = qasm2.loads(
            qasm,
            # Nothing is searched: qelib1.inc is built into Qiskit's parser and
            # every other include was refused above.
            include_path=(),
            custom_instructions=_custom_instructions(code),
        )
    except qasm2.QASM2ParseError as error:
        raise _from_qiskit_error(error) from None
    except (RecursionError, MemoryError) as error:
        raise CircuitError(f"the program is too deeply nested or too large ({type(error).__name__})") from None
    except Exception as error:  # Qiskit's circuit builder raises several types.
        raise CircuitError(f"the program could not be turned into a circuit: {error}") from None

    if circuit.num_qubits > limits.max_qubits or circuit.num_clbits > limits.max_clbits:
        raise CircuitError(
            f"the circuit has {circuit.num_qubits} qubits and {circuit.num_clbits} classical bits;"
            f" at most {limits.max_qubits} and {limits.max_clbits} are allowed"
        )
    if len(circuit.data) > limits.max_operations:
        raise CircuitError(
            f"the circuit has {len(circuit.data)} operations; at most {limits.max_operations} are allowed"
        )
    try:
        circuit = _inline_file_gates(circuit, limits, code)
    except CircuitError:
        raise
    except RecursionError:
        raise CircuitError("the program's gate definitions are nested too deeply") from None
    except Exception as error:  # Qiskit builds a file gate's body only when asked
        raise CircuitError(f"a gate definition could not be expanded: {error}") from None
    if not any(isinstance(operation, Measure) for operation in _operations(circuit)):
        raise CircuitError("the circuit measures no qubits; add measure statements")
    for instruction in circuit.data:
        condition = getattr(instruction.operation, "condition", None)
        if isinstance(condition, tuple) and len(condition) == 2 and isinstance(condition[1], int):
            target, value = condition
            width = len(target) if hasattr(target, "__len__") else 1
            if not 0 <= value < (1 << width):
                # Aer compares modulo 2**width and would run the branch wrongly.
                raise CircuitError(f"if compares a {width}-bit register with {value}, a value it can never hold")
    for operation in _operations(circuit):
        for parameter in operation.params:
            if isinstance(parameter, (int, float)) and not math.isfinite(parameter):
                # Overflowing expressions like 1e308*10 evaluate to inf; the
                # simulator would run them and return meaningless counts.
                raise CircuitError(f"gate {operation.name} has a parameter that is not a finite number")
    return circuit


_CLIFFORD_GATES = frozenset(get_clifford_gate_names())


def summarize(circuit: QuantumCircuit) -> CircuitSummary:
    """Counts and the Clifford test for a circuit from :func:`load_circuit`.

    The circuit is the one that runs: the file's own gates are already
    inlined, so ``gate_counts`` names only Qiskit library operations.
    """
    is_clifford = all(
        isinstance(operation, (ControlFlowOp, Measure, Reset, Barrier, Delay))
        or (operation.name in _CLIFFORD_GATES and _is_library_operation(operation))
        for operation in _operations(circuit)
    )
    return CircuitSummary(
        num_qubits=circuit.num_qubits,
        num_clbits=circuit.num_clbits,
        depth=circuit.depth(),
        size=circuit.size(),
        gate_counts={name: int(count) for name, count in circuit.count_ops().items()},
        is_clifford=is_clifford,
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
