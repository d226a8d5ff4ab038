"""What safe (weights-only) loading refused in a file, in one line, for every refusal torch words.

`torch.load(weights_only=True)` refuses a file before creating any object it does not allow, but its error is a
multi-line text that suggests retrying with `weights_only=False` (which runs the file's code). `refusal` turns each
of its wordings (torch 2.13's `torch/_weights_only_unpickler.py` and `torch/serialization.py`) into a short phrase
naming what was refused: the Python object where the file refers to one (read from the error, else found by
disassembling the file's pickle without running it), else the construct torch refused.
"""

from __future__ import annotations

import io
import pickletools
import re
import zipfile
from pathlib import Path

_SCAN_LIMIT = 64 << 20  # bytes of a non-archive file read to name its objects; the pickle comes first in it

# torch's wordings that name a refused global, then the ones that name none (what the pickle tried, in our words)
_NAMED_GLOBAL = (
    r"Unsupported global: GLOBAL (\S+) was not an allowed global",  # a global outside the allow-list
    r"unsupported GLOBAL (\S+) whose module \S+ is blocked",  # os, posix, nt, sys: refused whatever the allow-list
)
_FORMATS = (  # whole files torch refuses for their format
    (r"with TorchScript archives", "is a TorchScript archive (torch.jit.save: code, not weights)"),
    (r"legacy \.tar format", "is in torch's legacy .tar format"),
)
_UNNAMED = (  # what the pickle asked for, where torch names no global
    (r"Unsupported operand (\d+)", "uses the pickle opcode {opcode}, never written by torch.save"),
    (r"must be imported to load", "holds tensors of a torch module that is not loaded (nested or distributed)"),
    (r"Trying to call reduce for unrecognized function", "calls a function outside the allow-list"),
    (r"Can only create new object", "creates an object of a class outside the allow-list"),
    (r"Can only build", "sets the state of an object of a class outside the allow-list"),
    (r"Can only (?:append to|extend) lists", "adds items to something that is not a list"),
    (r"Can only SETITEMS? for dict", "sets items of something that is not a dict"),
    (r"persistent_load id must be|Only persistent_load of storage|unsupported persistent id",
     "refers to something other than tensor storage"),
    (r"String is too long", "holds a string longer than torch reads"),
)


def refusal(error: Exception, path: Path) -> str | None:
    """A phrase naming what `torch.load(path, weights_only=True)` refused ("refers to the Python object
    posix.system"), to follow "<file> ", or None when `error` is not a refusal (a damaged file, say)."""
    text = str(error)
    for pattern in _NAMED_GLOBAL:
        found = re.search(pattern, text)
        if found:
            return f"refers to the Python object {found.group(1)}"
    for pattern, phrase in _FORMATS:
        if re.search(pattern, text):
            return phrase
    for pattern, phrase in _UNNAMED:
        found = re.search(pattern, text)
        if found:
            return _named_objects(path) or (_opcode(phrase, found) if "{opcode}" in phrase else phrase)
    return None


def _named_objects(path: Path) -> str | None:
    """"refers to the Python object X" for the objects the file refers to outside torch's allow-list, or None."""
    objects = [name for name in globals_in(path) if name not in _allowed_globals()]
    if not objects:
        return None
    more = f" (and {len(objects) - 1} more)" if len(objects) > 1 else ""
    return f"refers to the Python object {objects[0]}{more}"


def _opcode(phrase: str, found: re.Match) -> str | None:
    """The phrase naming a pickle opcode torch does not read, or None for a byte that is no pickle opcode at all
    (a text file, a damaged archive: unreadable, not refused)."""
    code = int(found.group(1))
    name = next((op.name for op in pickletools.opcodes if ord(op.code) == code), None)
    return phrase.format(opcode=f"{name} ({code})") if name else None


def _allowed_globals() -> set[str]:
    """The globals weights-only loading accepts (the set `torch.serialization.get_unsafe_globals_in_checkpoint`
    compares with; torch has no public accessor for it)."""
    from torch import _weights_only_unpickler as unpickler

    return set(unpickler._get_allowed_globals()) | set(unpickler._get_user_allowed_globals())


def globals_in(path: Path) -> list[str]:
    """`module.name` of every global the file's pickle refers to, in order, found by disassembling it
    (`pickletools`, which never runs it); [] when the file cannot be read."""
    try:
        data = _pickle_bytes(path)
    except (OSError, zipfile.BadZipFile, KeyError, IndexError):
        return []
    return _globals_in_pickles(data)


def _pickle_bytes(path: Path) -> bytes:
    """The pickle of a torch.save archive (its `data.pkl`), or the start of any other file."""
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            member = next(n for n in archive.namelist() if n.endswith("data.pkl"))
            return archive.read(member)
    with open(path, "rb") as f:
        return f.read(_SCAN_LIMIT)


def _globals_in_pickles(data: bytes) -> list[str]:
    """Globals of the pickles in `data`, one after another (torch's legacy format holds several), until bytes that
    are not a pickle."""
    found: list[str] = []
    stream = io.BytesIO(data)
    while stream.tell() < len(data):
        try:
            found += _globals_in_one_pickle(stream)
        except ValueError:  # not (or no longer) a pickle: raw tensor bytes, a damaged file
            break
    return list(dict.fromkeys(found))


def _globals_in_one_pickle(stream: io.BytesIO) -> list[str]:
    found: list[str] = []
    strings: list[str] = []  # strings pushed so far: the last two name a STACK_GLOBAL (protocol 4+)
    memo: dict[int, str] = {}  # memoized strings: a repeated module name is fetched from the memo
    top = None  # the string on top of the stack, if the last push was one
    memoized = 0
    for op, arg, _ in pickletools.genops(stream):
        pushed = None
        if op.name in ("GLOBAL", "INST"):
            found.append(".".join(arg.split(" ", 1)))
        elif op.name == "STACK_GLOBAL" and len(strings) >= 2:
            found.append(f"{strings[-2]}.{strings[-1]}")
        elif "UNICODE" in op.name or "STRING" in op.name:
            pushed = arg.decode("latin-1") if isinstance(arg, bytes) else str(arg)
        elif op.name == "MEMOIZE" or op.name.endswith("PUT"):
            index = memoized if op.name == "MEMOIZE" else arg
            memoized += op.name == "MEMOIZE"
            if top is not None:
                memo[index] = top
            continue  # the stack is unchanged
        elif op.name.endswith("GET"):
            pushed = memo.get(arg)
        if pushed is not None:
            strings.append(pushed)
        top = pushed
    return found


def torch_reason(error: Exception) -> str:
    """torch's reason for not loading a file, in one line, without its advice to retry with `weights_only=False`
    (or to read its documentation)."""
    advice = ("weights_only", "Weights only load failed", "Check the documentation", "file an issue")
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    reasons = [line for line in lines if not any(a in line for a in advice)]
    return reasons[0] if reasons else type(error).__name__
