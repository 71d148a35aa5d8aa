"""Find each student's notebook in a collection of submissions (a folder or a zip).

Shapes understood (they can be mixed):

    alice.ipynb                                   one file per student, named by the student id
    bob/dense_backward.ipynb, bob/anything.ipynb  one folder per student
    Carol Jones_12345_assignsubmission_file_/x.ipynb   a learning-platform (Moodle) export
    submitted/erin/dense_backward/x.ipynb         nbgrader's own layout (a folder of learner folders
                                                  that each hold an ``<assignment>/`` folder), beside
                                                  any of the above: each learner in it is one learner

Rules for the ambiguous cases (each is named in the learner's notes, never silent):
several entries that map to one learner id are one learner; of their notebooks the one
named ``<assignment>.ipynb`` is graded, else the first in sorted order.

A zip is unpacked (safely: no absolute paths, no ``..``, no links, size caps)
into the run's own folder; the originals are only ever read.
"""
import os
import re
import shutil
import stat
import zipfile
from dataclasses import dataclass, field

SKIP = {"__MACOSX", ".ipynb_checkpoints", "__pycache__", ".DS_Store", "Thumbs.db"}
MAX_ZIP_TOTAL = 2 << 30          # bytes unpacked, the whole archive
MAX_ZIP_MEMBER = 200 << 20       # bytes unpacked, one file
MAX_ZIP_MEMBERS = 20000
MOODLE = re.compile(r"^(?P<name>.+?)_(?P<id>\d+)_assignsubmission_(?P<kind>[a-z]+)_?$")


@dataclass
class Submission:
    """One student's files; ``path`` is the notebook to grade (or None and ``problem``)."""
    student: str
    submitted_as: str                       # what the instructor will recognise: relative path
    path: str = None
    problem: str = ""                       # why there is nothing to grade
    notes: list = field(default_factory=list)
    files: list = field(default_factory=list)


class CollectionError(Exception):
    pass


def student_id(name):
    """A safe nbgrader student id from a file or folder name: lower case, [a-z0-9_-]."""
    m = MOODLE.match(name)
    if m:
        name = f"{m['name']}_{m['id']}"
    sid = re.sub(r"[^a-z0-9_-]+", "_", name.strip().lower()).strip("_-")
    return sid or "student"


def _visible(name):
    return not name.startswith(".") and name not in SKIP and not name.startswith("~$")


def unpack_zip(zip_path, dest):
    """Unpack ``zip_path`` into ``dest`` (which is emptied first); returns ``dest``."""
    try:
        zf = zipfile.ZipFile(zip_path)
    except (zipfile.BadZipFile, OSError) as e:
        raise CollectionError(f"{zip_path} is not a readable zip file ({e})") from None
    if os.path.isdir(dest):
        shutil.rmtree(dest)
    os.makedirs(dest)
    with zf:
        members = zf.infolist()
        if len(members) > MAX_ZIP_MEMBERS:
            raise CollectionError(f"{zip_path} holds {len(members)} files (limit {MAX_ZIP_MEMBERS})")
        total = 0
        for info in members:
            name = info.filename.replace("\\", "/")
            parts = [p for p in name.split("/") if p not in ("", ".")]
            mode = info.external_attr >> 16
            if (not parts or info.is_dir() or name.startswith("/") or ".." in parts
                    or stat.S_ISLNK(mode) or not all(_visible(p) for p in parts)):
                continue
            if info.file_size > MAX_ZIP_MEMBER:
                raise CollectionError(f"{zip_path}: {name} unpacks to {info.file_size >> 20} MB "
                                      f"(limit {MAX_ZIP_MEMBER >> 20} MB per file)")
            total += info.file_size
            if total > MAX_ZIP_TOTAL:
                raise CollectionError(f"{zip_path} unpacks to more than {MAX_ZIP_TOTAL >> 30} GB")
            target = os.path.join(dest, *parts)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with zf.open(info) as src, open(target, "wb") as out:
                # copy at most the declared size (a lying header cannot make it bigger)
                shutil.copyfileobj(_Limited(src, info.file_size), out)
    return dest


class _Limited:
    def __init__(self, f, n):
        self.f, self.left = f, n

    def read(self, size=-1):
        if self.left <= 0:
            return b""
        size = self.left if size is None or size < 0 else min(size, self.left)
        data = self.f.read(size)
        self.left -= len(data)
        return data


def _walk_files(folder):
    out = []
    for root, dirs, files in os.walk(folder, followlinks=False):
        dirs[:] = sorted(d for d in dirs if _visible(d))
        for f in sorted(files):
            p = os.path.join(root, f)
            if _visible(f) and os.path.isfile(p) and not os.path.islink(p):
                out.append(p)
    return out


def _top_level(folder, assignment):
    """The folder whose children are the students (descends wrapper folders of a zip export, but
    not into a learner's own folder: one holding a notebook or nbgrader's ``<assignment>/`` folder)."""
    entries = [e for e in sorted(os.listdir(folder)) if _visible(e)]
    if len(entries) == 1 and os.path.isdir(os.path.join(folder, entries[0])):
        inner = os.path.join(folder, entries[0])
        inner_entries = [e for e in os.listdir(inner) if _visible(e)]
        a_learner = any((e.lower().endswith(".ipynb") and os.path.isfile(os.path.join(inner, e)))
                        or e == assignment for e in inner_entries)
        if inner_entries and not a_learner:
            return _top_level(inner, assignment)
    return folder


def _nbgrader_wrapper(path, assignment):
    """A folder of learner folders in nbgrader's layout (``submitted/<learner>/<assignment>/``): every
    visible child is a folder, and at least one of them holds an ``<assignment>/`` folder."""
    kids = [k for k in os.listdir(path) if _visible(k)]
    if not kids or not all(os.path.isdir(os.path.join(path, k)) for k in kids):
        return False
    return any(os.path.isdir(os.path.join(path, k, assignment)) for k in kids)


def collect(folder, assignment):
    """Group the files under ``folder`` by student; returns a list of :class:`Submission`."""
    top = _top_level(folder, assignment)
    groups = {}          # student id -> list of (entry name, files)
    for entry in sorted(os.listdir(top)):
        if not _visible(entry):
            continue
        p = os.path.join(top, entry)
        if os.path.islink(p):
            continue
        if os.path.isdir(p) and _nbgrader_wrapper(p, assignment):
            for learner in sorted(os.listdir(p)):
                q = os.path.join(p, learner)
                if _visible(learner) and os.path.isdir(q) and not os.path.islink(q):
                    groups.setdefault(student_id(learner), []).append((f"{entry}/{learner}/", _walk_files(q)))
        elif os.path.isdir(p):
            sid = student_id(entry)
            groups.setdefault(sid, []).append((entry + "/", _walk_files(p)))
        elif os.path.isfile(p):
            stem = entry.rsplit(".", 1)[0] if "." in entry else entry
            sid = student_id(stem)
            groups.setdefault(sid, []).append((entry, [p]))
    subs = []
    for sid in sorted(groups):
        entries = groups[sid]
        files = [f for _, fs in entries for f in fs]
        shown = ", ".join(e for e, _ in entries)
        sub = Submission(student=sid, submitted_as=shown, files=files)
        if len(entries) > 1:
            sub.notes.append(f"several entries map to student id '{sid}': {shown} (one learner; see the rule "
                             f"for which notebook is graded)")
        _choose_notebook(sub, top, assignment)
        subs.append(sub)
    return subs


def _choose_notebook(sub, top, assignment):
    rel = lambda p: os.path.relpath(p, top)   # noqa: E731
    notebooks = [f for f in sub.files if f.lower().endswith(".ipynb")]
    if not sub.files:
        sub.problem = "empty folder: no files submitted"
    elif not notebooks:
        names = ", ".join(rel(f) for f in sub.files[:5]) + (" ..." if len(sub.files) > 5 else "")
        sub.problem = f"not a notebook: no .ipynb file among the files submitted ({names})"
    else:
        wanted = [f for f in notebooks if os.path.basename(f).lower() == f"{assignment}.ipynb"]
        chosen = (wanted or notebooks)[0]
        sub.path = chosen
        nested = os.path.dirname(rel(chosen)) != ""
        if len(notebooks) > 1:
            sub.notes.append(f"{len(notebooks)} notebooks submitted ({', '.join(rel(f) for f in notebooks)}); "
                             f"graded {rel(chosen)}")
        if nested and not wanted:
            sub.notes.append(f"wrong file name: {rel(chosen)} was graded as {assignment}.ipynb")
