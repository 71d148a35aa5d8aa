"""Read a submitted notebook safely and prepare the copy nbgrader grades.

``prepare(path, release_nb, assignment)`` returns a :class:`Prepared`: either a
clean notebook to grade, or a problem ("empty file", "not valid JSON", "a
notebook from another assignment", ...). The copy is rebuilt cell by cell from
the submission, so junk metadata or a broken structure cannot reach nbgrader:

* every graded cell of the assignment (test, solution, read-only) gets the
  assignment's nbgrader metadata back (points, locked, grade); a test cell's
  text is the assignment's (nbgrader also restores it from the gradebook);
* a test cell that was deleted (or whose metadata was stripped) is put back
  where it belongs, so it is graded and not silently scored 0;
* a graded cell that is not part of the assignment, or a second copy of one,
  loses its grading metadata;
* learner code that looks like tampering (monkeypatching numpy, importing the
  checks, reading files, exiting) is noted for a person to look at.

Each of these is reported in ``flags`` (a person should look) or ``notes``.
"""
import copy
import json
import re
from dataclasses import dataclass, field

import nbformat

MAX_BYTES = 20 << 20

SUSPICIOUS = [
    (r"bplib\s*\.\s*checks|from\s+bplib\s+import\s+[^\n]*\bchecks\b|import_module\(\s*['\"]bplib",
     "uses the grading checks (bplib.checks) in its own code"),
    (r"\b(np|numpy)(\s*\.\s*\w+)+\s*=(?!=)|setattr\(\s*(np|numpy)\b",
     "assigns to numpy attributes (monkeypatching)"),
    (r"^\s*(check|compare|rel_error)\s*=(?!=)|\bchecks\s*\.\s*\w+\s*=(?!=)|gradcheck\s*\.\s*\w+\s*=(?!=)",
     "replaces a checking function"),
    (r"BPLIB_RECORD_DIR|\bsys\.modules\b|__builtins__|\bbuiltins\b|\bctypes\b|\bgc\.get_objects|_getframe",
     "manipulates the interpreter or the grading records"),
    (r"\bopen\s*\(|\bnp\.load\s*\(|\bnumpy\.load\s*\(|\bloadtxt\b|\bpickle\b|\bglob\b|os\.walk|listdir|scandir"
     r"|\bPath\s*\(|read_text|read_bytes|\bsubprocess\b|os\.system|os\.popen"
     r"|^\s*!|^\s*%%?(bash|sh|system|sx|load|run)\b|get_ipython\(\)\.(system|run_line_magic|run_cell_magic)",
     "reads files or runs programs"),
    (r"os\._exit|sys\.exit\s*\(|\bexit\s*\(|\bquit\s*\(|os\.kill\b|signal\.signal",
     "exits or kills the kernel"),
]


@dataclass
class Prepared:
    notebook: object = None                 # nbformat NotebookNode to grade, or None
    problem: str = ""                       # why it cannot be graded
    flags: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    code_cells: int = 0


def _nbg(cell):
    md = cell.get("metadata") if isinstance(cell, dict) else None
    nbg = md.get("nbgrader") if isinstance(md, dict) else None
    return nbg if isinstance(nbg, dict) else None


def _source(cell):
    src = cell.get("source", "")
    if isinstance(src, list):
        src = "".join(s for s in src if isinstance(s, str))
    return src if isinstance(src, str) else ""


def read_raw(path):
    """The notebook's JSON as a dict, or raise ValueError with a message for the summary."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_BYTES + 1)
    except OSError as e:
        raise ValueError(f"cannot read the file ({e.strerror})") from None
    if len(data) > MAX_BYTES:
        raise ValueError(f"file larger than {MAX_BYTES >> 20} MB: not graded")
    if not data.strip():
        raise ValueError("empty file")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ValueError("not a notebook: a binary file, not JSON text") from None
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"not valid JSON (line {e.lineno}, column {e.colno}: {e.msg}): "
                         "the file is damaged or not a notebook") from None
    except RecursionError:
        raise ValueError("not valid JSON (nested too deeply)") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("cells", raw.get("worksheets")), list):
        raise ValueError("not a Jupyter notebook: valid JSON but no list of cells")
    return raw


def _v4_cells(raw):
    """The cells of any notebook version as plain dicts (v3 worksheets converted)."""
    if "worksheets" in raw and "cells" not in raw:
        try:
            nb = nbformat.reads(json.dumps(raw), as_version=4)
        except Exception as e:   # noqa: BLE001  (any failure here means "not a notebook we can read")
            raise ValueError(f"not a readable Jupyter notebook ({type(e).__name__})") from None
        return [dict(c) for c in nb.cells]
    return [c for c in raw["cells"] if isinstance(c, dict)]


META_KEYS = ("grade_id", "grade", "solution", "locked", "points", "task")


def _meta(nbg):
    return {k: (nbg or {}).get(k) for k in META_KEYS}


def scan(source, given=frozenset()):
    """Reasons this learner code deserves a look (empty list: nothing noticed).

    Lines that the released notebook already contains (``given``) are skipped."""
    code = "\n".join(line.split("#", 1)[0] for line in source.splitlines() if line.strip() not in given)
    return [why for pattern, why in SUSPICIOUS if re.search(pattern, code, re.M)]


def prepare(path, release, assignment, other_assignments=()):
    """Check and rebuild the submission at ``path`` against the release notebook ``release``."""
    out = Prepared()
    try:
        cells = _v4_cells(read_raw(path))
    except ValueError as e:
        out.problem = str(e)
        return out

    rel_cells = release.cells
    rel_by_id = {_nbg(c)["grade_id"]: c for c in rel_cells if _nbg(c) and _nbg(c).get("grade_id")}
    tests = [gid for gid, c in rel_by_id.items() if _nbg(c).get("grade")]
    sub_ids = [(_nbg(c) or {}).get("grade_id") for c in cells]
    known = [g for g in sub_ids if g in rel_by_id]
    foreign = [g for g in sub_ids if isinstance(g, str) and g not in rel_by_id]
    if not known and foreign:
        owner = [a for a, ids in other_assignments if set(foreign) & set(ids)]
        which = f"assignment {owner[0]}" if owner else "another assignment"
        out.problem = (f"a notebook from {which}, not {assignment}: none of its graded cells "
                       f"({', '.join(sorted(set(foreign))[:4])}) belong to {assignment}")
        return out
    if not known:
        out.flags.append("no nbgrader metadata: not made from the released exercise; "
                         "its code was graded with the assignment's tests added back")

    new = nbformat.v4.new_notebook()
    new.metadata = copy.deepcopy(release.metadata)
    seen = set()
    suspicious, edited, meta_changed, deleted = [], [], [], []
    given = frozenset(line.strip() for c in rel_cells for line in _source(c).splitlines())
    for cell in cells:
        ctype = cell.get("cell_type")
        if ctype not in ("code", "markdown", "raw"):
            continue
        src = _source(cell)
        nbg = _nbg(cell)
        gid = nbg.get("grade_id") if nbg else None
        if gid in rel_by_id and gid not in seen:
            seen.add(gid)
            ref = rel_by_id[gid]
            rnbg = _nbg(ref)
            if rnbg.get("locked") and not rnbg.get("solution"):
                if src.strip() != _source(ref).strip() or ctype != ref.cell_type:
                    edited.append(gid)
                if _meta(nbg) != _meta(rnbg) and rnbg.get("grade"):
                    meta_changed.append(gid)
                new.cells.append(_clone(ref))
                continue
            if _meta(nbg) != _meta(rnbg) and rnbg.get("grade"):
                meta_changed.append(gid)
            c = _make(ref.cell_type, src)
            c.metadata["nbgrader"] = copy.deepcopy(rnbg)
            new.cells.append(c)
            if ref.cell_type == "code":
                suspicious += scan(src, given)
            continue
        if gid is not None and nbg.get("grade"):
            if gid in rel_by_id:
                out.flags.append(f"graded cell {gid} appears twice: the copy was not graded")
            else:
                out.flags.append(f"graded cell {gid} is not part of {assignment}: ignored")
        new.cells.append(_make(ctype, src))
        if ctype == "code":
            suspicious += scan(src, given)

    # put back every test cell that is missing, after the cell that precedes it in the release
    for gid in tests:
        if gid in seen:
            continue
        idx = [(_nbg(c) or {}).get("grade_id") for c in rel_cells].index(gid)
        at = len(new.cells)
        for prev in reversed(rel_cells[:idx]):
            pid = (_nbg(prev) or {}).get("grade_id")
            pos = [i for i, c in enumerate(new.cells) if (_nbg(c) or {}).get("grade_id") == pid]
            if pid and pos:
                at = pos[0] + 1
                break
        new.cells.insert(at, _clone(rel_by_id[gid]))
        seen.add(gid)
        if known:
            deleted.append(gid)
    if deleted:
        out.flags.append("test cells deleted (put back and graded): " + ", ".join(deleted))
    if edited:
        out.flags.append("locked cells edited (restored from the assignment): " + ", ".join(edited))
    if meta_changed:
        out.flags.append("grading metadata changed (restored): " + ", ".join(meta_changed))
    missing_solutions = [g for g, c in rel_by_id.items() if _nbg(c).get("solution") and g not in seen]
    if missing_solutions and known:
        out.notes.append("solution cell(s) missing: " + ", ".join(missing_solutions))
    if suspicious:
        out.flags.append("suspicious code: " + "; ".join(dict.fromkeys(suspicious)))
    out.notebook = new
    out.code_cells = sum(c.cell_type == "code" for c in new.cells)
    return out


def _make(ctype, src):
    if ctype == "code":
        return nbformat.v4.new_code_cell(src)
    if ctype == "markdown":
        return nbformat.v4.new_markdown_cell(src)
    return nbformat.v4.new_raw_cell(src)


def _clone(ref):
    c = _make(ref.cell_type, _source(ref))
    c.metadata = copy.deepcopy(ref.metadata)
    return c
