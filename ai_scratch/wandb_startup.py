"""Four fixed costs of importing wandb and starting its run, avoided without changing what the run
records.

Measured on these machines (Python 3.11, wandb 0.31, 2 CPU cores), in an ``ai-scratch fit``
process that has torch, Lightning and torchvision loaded:

1. **Launch job inputs, 0.4 s.** ``wandb.init`` ends with ``Run._detect_and_apply_job_inputs``,
   which imports ``wandb.sdk.launch.inputs.internal`` to apply the inputs that a script staged for
   W&B Launch (``wandb.launch.manage_wandb_config``, ``manage_config_file``, called before
   ``wandb.init``). That import loads the whole Launch agent and wandb's public API: 0.4 s even
   when it is made first thing in the process (see :mod:`ai_scratch.entry`), 2.1 s after torch.
   Inputs can only be staged through that module, so while it is not loaded there is nothing to
   apply. :func:`install` wraps the method: it returns at once when the module is not loaded and
   calls wandb's own method when it is, so a run launched by W&B Launch is handled as before.
2. **The service's port file, 0.16 s.** wandb starts its service (``wandb-core``) and waits for
   the file in which the service writes its address, reading it and sleeping 0.2 s between reads.
   The service writes it about 40 ms after it starts, so the first read is too early and the
   process sleeps the rest of the 0.2 s. :func:`install` shortens that sleep to 10 ms (one small
   file read per wait); the timeout is wandb's as before. wandb keeps this sleep as a module
   attribute so that its own tests can replace it (``service_port_file._SLEEP``).

3. **Attribute docstrings, 0.3 s of the import.** wandb's pydantic models (its ``Settings``, the
   artifact models: 21 classes, some 180 documented fields) set ``use_attribute_docstrings``, so that
   pydantic makes each field's docstring its description. To find a class's source, pydantic (on
   Python before 3.13) walks the call stack with ``inspect.getmodule``, reads the class's block
   with Python's pure-Python tokenizer (``inspect.getblock``) and parses it again: 0.31 of the 0.71
   s that ``import wandb`` takes here. :func:`attribute_docstrings_read_once` reads the same
   descriptions from one parse of each class statement by Python's own parser: pydantic's own
   ``DocstringVisitor`` visits the same statement, found at the line that is creating the class,
   as pydantic finds it. A class whose statement is not at the top of its module's file (one
   defined in a function, say) goes to pydantic's own function, and so does every class once the
   import is over. :func:`import_wandb` imports wandb inside it.

4. **The installed packages, 0.1 s of ``wandb.init``.** A run records the name and version of every
   installed distribution (its ``requirements.txt``), from ``wandb.util.working_set``, which asks
   ``importlib.metadata`` for each one's ``Name`` and then its ``Version``: each question parses
   the whole METADATA file with the email parser, long description included (torch's and
   matplotlib's run to hundreds of lines), so 107 distributions cost 0.10 to 0.15 s here.
   :func:`installed_distributions` parses only the header block of each file, once, for both
   (0.04 s): the same names and versions in the same order (tested against wandb's own list).

Items 1, 2 and 4 are applied by :func:`install`: from the console entry once wandb is imported,
before torch, and from the CLI before its logger starts the run. It acts in the process of global
rank zero only (the one that starts the run; a DDP process with ``RANK`` or ``LOCAL_RANK`` other
than 0 starts none) and only where wandb is installed. A wandb or pydantic release without these
functions is left alone; :func:`install` returns which of its three it applied.
benchmarks/tracking_overhead.py measures what they save (``--against`` a checkout from before).
"""

from __future__ import annotations

import ast
import contextlib
import email
import functools
import linecache
import os
import sys
import time
from collections.abc import Iterable, Iterator
from types import ModuleType

#: the module that ``Run._detect_and_apply_job_inputs`` imports, and through which inputs are staged
WANDB_LAUNCH_INPUTS = "wandb.sdk.launch.inputs.internal"
#: how long to sleep between reads of wandb's port file (wandb's own: 0.2 s)
PORT_FILE_POLL_SECONDS = 0.01


def first_process() -> bool:
    """Whether this process is global rank zero, or not started by a distributed launcher."""
    return all(os.environ.get(name, "0") == "0" for name in ("RANK", "LOCAL_RANK"))


def _apply_staged_launch_inputs_only(method):
    @functools.wraps(method)
    def apply_job_inputs(run) -> None:
        if WANDB_LAUNCH_INPUTS in sys.modules:  # something may have been staged: wandb applies it
            method(run)

    apply_job_inputs.skips_unstaged_launch_inputs = True
    return apply_job_inputs


def _short_sleep(seconds: float) -> None:
    time.sleep(min(seconds, PORT_FILE_POLL_SECONDS))


def import_wandb() -> ModuleType:
    """``import wandb``, with :func:`attribute_docstrings_read_once` (ImportError without wandb)."""
    with attribute_docstrings_read_once():
        import wandb
    return wandb


@contextlib.contextmanager
def attribute_docstrings_read_once() -> Iterator[bool]:
    """While inside, pydantic reads the attribute docstrings of a model class from one parse of the
    class's own statement (item 3 of the module docstring; each module's lines are read once, by
    ``linecache``, which keeps them as pydantic's own search does). Yields whether it applies: not where pydantic has no such function (another
    release), which is left alone. Not thread-safe: meant for an import at a process's start."""
    try:
        from pydantic._internal import _docs_extraction, _fields
    except ImportError:
        yield False
        return
    original = getattr(_fields, "extract_docstrings_from_cls", None)
    if original is None or original is not getattr(_docs_extraction, "extract_docstrings_from_cls", None) \
            or not hasattr(_docs_extraction, "DocstringVisitor"):
        yield False
        return
    @functools.wraps(original)
    def extract_docstrings_from_cls(cls: type, use_inspect: bool = False) -> dict[str, str]:
        node = _class_statement(cls)
        if node is None:
            return original(cls, use_inspect=use_inspect)
        visitor = _docs_extraction.DocstringVisitor()
        visitor.generic_visit(node)  # as pydantic visits the class statement it parsed
        return visitor.attrs

    _fields.extract_docstrings_from_cls = extract_docstrings_from_cls
    try:
        yield True
    finally:
        _fields.extract_docstrings_from_cls = original


def _class_statement(cls: type) -> ast.ClassDef | None:
    """The top-level ``class`` statement that is creating ``cls`` now: in the innermost frame of
    ``cls``'s module (where pydantic looks), at that frame's line (the class's line or its first
    decorator's). None when there is no such statement (then pydantic's own search decides)."""
    if cls.__qualname__ != cls.__name__:  # nested in a function or class: pydantic dedents it
        return None
    frame = sys._getframe(1)
    while frame is not None and frame.f_globals.get("__name__") != cls.__module__:
        frame = frame.f_back
    if frame is None:
        return None
    statement = _top_level_statement(linecache.getlines(frame.f_code.co_filename), frame.f_lineno)
    if isinstance(statement, ast.ClassDef) and statement.name == cls.__name__:
        return statement
    return None


def _top_level_statement(lines: list[str], line: int) -> ast.stmt | None:
    """The statement that starts at ``line`` (1-based) at the top of a module's ``lines``, parsed
    alone: its lines run to the next line that starts in column 0 with code (decorators and the
    ``class`` line they decorate are one statement). A cut inside a string or brackets does not
    parse: then None."""
    if not 0 < line <= len(lines) or lines[line - 1][:1] in ("", " ", "\t", "#", "\n"):
        return None
    end = line
    decorators = lines[line - 1].startswith("@")
    while end < len(lines):
        text = lines[end]
        starts_code = text[:1] not in (" ", "\t", "#", "\n", "\r", ")", "]", "}", "")
        if starts_code and not decorators:
            break
        if starts_code and not text.startswith("@"):
            decorators = False  # the decorated statement's own first line
        end += 1
    try:
        tree = ast.parse("".join(lines[line - 1 : end]))
    except (SyntaxError, ValueError):
        return None
    return tree.body[0] if len(tree.body) == 1 else None


def installed_distributions(distributions: Iterable | None = None) -> Iterator:
    """``wandb.util.working_set()`` (item 4 of the module docstring): an ``InstalledDistribution``
    (name, version) for each of ``distributions`` (by default every installed one, in
    ``importlib.metadata``'s order), from one parse of the header block of its metadata; an
    unusual one (no metadata, a header missing or folded) as wandb reads it."""
    from importlib.metadata import distributions as installed

    from wandb.util import InstalledDistribution

    for distribution in installed() if distributions is None else distributions:
        with contextlib.suppress(KeyError, UnicodeDecodeError, TypeError):  # as wandb's own
            name, version = _name_and_version(distribution)
            yield InstalledDistribution(key=name, version=version)


def _name_and_version(distribution) -> tuple[str, str]:
    # The text that importlib.metadata parses (Distribution.metadata), up to the blank line that
    # ends its headers: the email parser reads the same headers from it.
    text = distribution.read_text("METADATA") or distribution.read_text("PKG-INFO") or distribution.read_text("")
    if text:
        headers = email.message_from_string(text.split("\n\n", 1)[0])
        name, version = headers["Name"], headers["Version"]
        if name is not None and version is not None and "\n" not in name + version:
            return name, version
    # No metadata, a header missing or folded (re-indented by importlib.metadata): wandb's own
    # questions, with whatever they answer or raise in this Python.
    return distribution.metadata["Name"], distribution.version


def install() -> list[str]:
    """Apply items 1, 2 and 4 (see the module docstring) once per process; returns the names of
    those in effect: ``"launch inputs"``, ``"port file poll"``, ``"installed packages"``. Empty
    where wandb is not installed, in a process other than global rank zero, or in a wandb release
    that no longer has them."""
    if not first_process():
        return []
    try:
        with attribute_docstrings_read_once():  # in case this imports wandb
            from wandb.sdk.lib.service import service_port_file
            from wandb.sdk.wandb_run import Run
    except ImportError:
        return []
    applied = []
    method = getattr(Run, "_detect_and_apply_job_inputs", None)
    if method is not None:
        if not getattr(method, "skips_unstaged_launch_inputs", False):
            Run._detect_and_apply_job_inputs = _apply_staged_launch_inputs_only(method)
        applied.append("launch inputs")
    if callable(getattr(service_port_file, "_SLEEP", None)):
        service_port_file._SLEEP = _short_sleep
        applied.append("port file poll")
    import wandb.util

    if callable(getattr(wandb.util, "working_set", None)) and hasattr(wandb.util, "InstalledDistribution"):
        wandb.util.working_set = installed_distributions  # wandb imports it where it asks, at each run's start
        applied.append("installed packages")
    return applied
