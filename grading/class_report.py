"""What the class got wrong: ``runs/<a>/report.html`` for the instructor, and the lines printed last.

    write_report(out_dir, assignment, rows, release) -> (path of report.html, [summary lines])
    mistakes_of(row, test_ids=None) -> ["<function>: <symptom>", ...]     (the grades.csv column)

``rows`` are the merged rows of a run (grading/cli.py): student -> {"score", "max_score", "problem",
"flags", "cells": {grade_id: {"score", "max", "verified", "status", "symptoms"}}}. The diagnosis is the
checks' own: each cell's ``symptoms`` are the ``Mistake.symptom`` texts of bplib/checks/<a>.py that the
learner's answer matched in the clean re-run. Nothing is re-judged here.

Every learner of a row lands in exactly one of: grader error, not attempted, not graded (a problem), or
graded; a graded learner is then counted, per graded function (the visible and hidden cells of one
function together), under each symptom it matched, under "used the course's reference", under
"unrecognised" (a wrong answer, i.e. the function returned and the clean re-run failed it, that no known
symptom explains: listed for a look) or under another failure (an exception, a timeout, ...).

The page is self-contained: inline CSS, the score histogram as a PNG in a data: URI (matplotlib, Agg,
fixed size and dpi, no metadata: the same bytes on every run), no scripts, no links out; it carries no
time stamp, so grading again gives the same page.
"""
import base64
import html
import io
import os
import statistics

NOT_ATTEMPTED = "not attempted"
NOT_WRITTEN = "raised NotImplementedError"
FIG_SIZE, FIG_DPI = (4.8, 2.7), 150          # 720 x 405 px, shown 480 x 270 (sharp on a phone too)


# -- the data ---------------------------------------------------------------------------------------
def test_cells(release):
    """[(grade_id, points)] of the release notebook's test cells, in notebook order."""
    out = []
    for c in release.cells:
        meta = c.metadata.get("nbgrader", {}) or {}
        if meta.get("grade"):
            out.append((meta["grade_id"], float(meta.get("points", 0) or 0)))
    return out


def function_of(gid):
    """The graded function a test cell checks: the check's ``fn_name``, else the id without _visible/_hidden."""
    try:
        from bplib.checks import CHECKS
        if gid in CHECKS:
            return CHECKS[gid].fn_name
    except Exception:   # noqa: BLE001  (a report must not fail on an unknown check)
        pass
    for suffix in ("_visible", "_hidden"):
        if gid.endswith(suffix):
            return gid[:-len(suffix)]
    return gid


def _ordered_cells(row, test_ids=None):
    cells = row.get("cells") or {}
    ids = [g for g in (test_ids or []) if g in cells] + sorted(g for g in cells if g not in (test_ids or []))
    return [(g, cells[g]) for g in ids]


def _by_function(row, test_ids=None):
    """{function: [cell, ...]} in the order of the notebook."""
    out = {}
    for gid, cell in _ordered_cells(row, test_ids):
        out.setdefault(function_of(gid), []).append(cell)
    return out


def mistakes_of(row, test_ids=None):
    """The diagnosed symptoms of one learner, ``"<function>: <symptom>"``, once per function (visible and
    hidden cells of one function matched the same symptom: it is listed once)."""
    out = []
    for fn, cells in _by_function(row, test_ids).items():
        for cell in cells:
            for s in cell.get("symptoms") or []:
                item = f"{fn}: {s}"
                if item not in out:
                    out.append(item)
    return out


def not_attempted(row):
    """The grader says so (the status or a flag starts with "not attempted"), or every graded function
    still raises NotImplementedError."""
    texts = [row.get("problem") or ""] + list(row.get("flags") or [])
    if any(str(t).strip().lower().startswith(NOT_ATTEMPTED) for t in texts):
        return True
    statuses = [str(c.get("status", "")) for c in (row.get("cells") or {}).values()]
    return bool(statuses) and all(s in (NOT_WRITTEN, NOT_ATTEMPTED) for s in statuses)


def grader_error(row):
    """The grader's own machinery failed (a ``grader error: <what>; regrade`` row): regrade, not the
    learner's 0. ``grading error:`` is what a worker reports when grading one learner raised."""
    return str(row.get("problem") or "").startswith(("grader error", "grading error"))


def _wrong_answer(status):
    """The function returned something and the clean re-run judged it (a wrong answer, not a crash)."""
    s = str(status).strip().lower()
    return s == "ok" or s.startswith("wrong")


def _other_label(status):
    s = str(status)
    if not s:
        return "no verdict recorded"
    if s in (NOT_WRITTEN, NOT_ATTEMPTED):
        return "not written (still raises NotImplementedError)"
    return {"timeout": "ran out of time", "missing": "not defined (renamed?)",
            "not run": "the clean re-run did not report it"}.get(s, s)


def short(symptom, limit=100):
    """The head of a symptom for the printed lines: up to its first ": " or sentence end outside
    parentheses ("db is exactly N times too small: it was averaged ..." -> "db is exactly N times too
    small"); the page shows the whole text."""
    text, depth = str(symptom).strip(), 0
    for i, ch in enumerate(text):
        depth += (ch == "(") - (ch == ")")
        if depth == 0 and ch in ":." and (i + 1 == len(text) or text[i + 1] == " ") and i > 0:
            text = text[:i]
            break
    return text if len(text) <= limit else text[:limit - 1].rstrip() + "…"


def _learners(n):
    return f"{n} learner" + ("" if n == 1 else "s")


def analyse(rows, release):
    """Everything the report shows, as plain data (the tests read it too)."""
    tests = test_cells(release)
    ids = [g for g, _ in tests]
    fn_order = list(dict.fromkeys(function_of(g) for g in ids))
    groups = {}          # (kind, function, text) -> [students]; kind: symptom, reference, unrecognised, other
    out = {"not_attempted": [], "grader_errors": [], "not_graded": [], "scores": []}
    passes = {g: [0, 0] for g in ids}
    for sid in sorted(rows):
        row = rows[sid]
        cells = row.get("cells") or {}
        for g in ids:
            if g in cells:
                passes[g][1] += 1
                passes[g][0] += bool(cells[g].get("verified"))
        if grader_error(row):           # first: whatever the notebook holds, it must be graded again
            out["grader_errors"].append((sid, str(row["problem"])))
            continue
        if not_attempted(row):
            out["not_attempted"].append(sid)
            if not row.get("problem"):
                out["scores"].append(float(row.get("score", 0) or 0))
            continue
        if row.get("problem"):
            out["not_graded"].append((sid, str(row["problem"])))
            continue
        out["scores"].append(float(row.get("score", 0) or 0))
        for fn, fcells in _by_function(row, ids).items():
            if fn not in fn_order:
                fn_order.append(fn)
            symptoms = list(dict.fromkeys(s for c in fcells for s in (c.get("symptoms") or [])))
            for s in symptoms:
                groups.setdefault(("symptom", fn, s), []).append(sid)
            for c in fcells:
                if c.get("verified"):
                    continue
                status = str(c.get("status", ""))
                if status.startswith("reference used"):
                    key = ("reference", fn, "")
                elif _wrong_answer(status):
                    if symptoms:
                        continue
                    key = ("unrecognised", fn, "")
                else:
                    key = ("other", fn, _other_label(status))
                if sid not in groups.setdefault(key, []):
                    groups[key].append(sid)

    def order(item):
        (kind, fn, text), who = item
        return (-len(who), fn_order.index(fn), first_seen[(kind, fn, text)])
    first_seen = {k: i for i, k in enumerate(groups)}
    ranked = sorted(groups.items(), key=order)
    for kind in ("symptom", "reference", "unrecognised", "other"):
        out[kind] = [{"function": fn, "text": text, "learners": who} for (k, fn, text), who in ranked if k == kind]
    out["functions"] = fn_order
    out["tests"] = [{"id": g, "points": p, "passed": passes[g][0], "of": passes[g][1]} for g, p in tests]
    out["max_score"] = sum(p for _, p in tests) or max((float(r.get("max_score", 0) or 0) for r in rows.values()),
                                                       default=0.0)
    out["rows"] = len(rows)
    return out


def _rate(t):
    return f"{100 * t['passed'] / t['of']:.0f}%" if t["of"] else "n/a"


def summary_lines(path, info):
    """The top lines the CLI prints at the end of a run."""
    lines = [f"report: {path}"]
    if info["tests"]:
        lines.append("pass rate: " + ", ".join(f"{t['id']} {_rate(t)}" for t in info["tests"]))
    top = [(len(g["learners"]), f"{short(g['text'])} ({g['function']})") for g in info["symptom"]]
    if info["not_attempted"]:
        top.append((len(info["not_attempted"]), NOT_ATTEMPTED))
    ref = {s for g in info["reference"] for s in g["learners"]}
    if ref:
        top.append((len(ref), "used the course's reference"))
    unrec = {s for g in info["unrecognised"] for s in g["learners"]}
    if unrec:
        top.append((len(unrec), "unrecognised (listed in the report)"))
    top = sorted(top, key=lambda t: -t[0])[:5]          # stable: symptoms first among equal counts
    if top:
        lines.append("most common mistakes: " + "; ".join(
            f"{_learners(n) if i == 0 else n}: {text}" for i, (n, text) in enumerate(top)))
    else:
        lines.append("most common mistakes: none diagnosed")
    if unrec:
        names = [f"{s} ({', '.join(g['function'] for g in info['unrecognised'] if s in g['learners'])})"
                 for s in sorted(unrec)]
        more = f" and {len(names) - 8} more (all in the report)" if len(names) > 8 else ""
        lines.append("unrecognised wrong answers, for a look: " + ", ".join(names[:8]) + more)
    if info["grader_errors"]:
        lines.append(f"grader errors, regrade: {', '.join(s for s, _ in info['grader_errors'])}")
    return lines


# -- the histogram --------------------------------------------------------------------------------
def _bins(scores, top):
    """[(label, left, width, count)]: one bar per whole score when the points are whole, else 10 bins."""
    if top > 0 and float(top).is_integer() and top <= 60 and all(float(s).is_integer() for s in scores):
        counts = {}
        for s in scores:
            counts[int(s)] = counts.get(int(s), 0) + 1
        return [(f"{v}", v - 0.4, 0.8, counts.get(v, 0)) for v in range(int(top) + 1)]
    hi = top if top > 0 else max(scores, default=1.0) or 1.0
    w = hi / 10
    out = []
    for k in range(10):
        lo = k * w
        n = sum(1 for s in scores if lo <= s < lo + w or (k == 9 and s >= lo))
        out.append((f"{lo:g} to {lo + w:g}", lo, w * 0.9, n))
    return out


def histogram_png(scores, top):
    """The score histogram as PNG bytes: the same bytes for the same scores (fixed size, dpi, style,
    no metadata)."""
    from matplotlib import rc_context, style
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator
    with style.context("default"), rc_context({"font.size": 11}):
        fig = Figure(figsize=FIG_SIZE, dpi=FIG_DPI)
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
        bins = _bins(scores, top)
        if scores:
            bars = ax.bar([b[1] for b in bins], [b[3] for b in bins], width=[b[2] for b in bins],
                          align="edge", color="#1f4e79")
            ax.bar_label(bars, labels=[str(b[3]) if b[3] else "" for b in bins], padding=2, color="#1a1a1a")
            ax.set_ylim(0, max(b[3] for b in bins) * 1.18 + 0.5)
        else:
            ax.text(0.5, 0.5, "no graded submissions", ha="center", va="center", transform=ax.transAxes)
        ax.set_xlabel(f"score (out of {top:g})")
        ax.set_ylabel("learners")
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.spines[["top", "right"]].set_visible(False)
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=FIG_DPI, metadata={"Software": None})
    return buf.getvalue()


def histogram_alt(scores, top):
    if not scores:
        return "Score histogram: no submission was graded."
    parts = [f"{n} scored {label}" for label, _, _, n in _bins(scores, top) if n]
    return (f"Bar chart of the scores out of {top:g} of {_learners(len(scores))}: " + ", ".join(parts) + ".")


# -- the page -------------------------------------------------------------------------------------
CSS = """
:root { color-scheme: light; }
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
       line-height: 1.5; color: #1a1a1a; background: #ffffff; margin: 0 auto; max-width: 48rem;
       padding: 1rem; overflow-wrap: break-word; }
h1 { font-size: 1.6rem; line-height: 1.25; margin: 0.5rem 0 1rem; }
h2 { font-size: 1.25rem; margin: 2rem 0 0.5rem; border-bottom: 2px solid #1f4e79; }
h3 { font-size: 1.05rem; margin: 1.25rem 0 0.25rem; font-family: ui-monospace, Menlo, Consolas, monospace; }
img { max-width: 100%; height: auto; display: block; }
figure { margin: 0; }
figcaption, .muted { color: #4d4d4d; font-size: 0.95rem; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; width: 100%; }
caption { text-align: left; color: #4d4d4d; padding-bottom: 0.25rem; }
th, td { text-align: left; padding: 0.35rem 0.5rem; border-bottom: 1px solid #8c8c8c; vertical-align: top; }
th { background: #eef2f7; }
td.num, th.num { text-align: right; }
td.num { white-space: nowrap; }
@media (max-width: 30rem) { th, td { padding: 0.3rem 0.25rem; } }
ul { padding-left: 1.25rem; }
li { margin: 0.4rem 0; }
.count { font-weight: 700; }
.who { display: block; color: #333333; overflow-wrap: anywhere; }
code { font-family: ui-monospace, Menlo, Consolas, monospace; }
"""


def _e(s):
    return html.escape(str(s), quote=True)


def _id(gid):
    """A grade id that wraps at its underscores on a narrow screen."""
    return "_<wbr>".join(_e(part) for part in str(gid).split("_"))


def _who(names):
    return f'<span class="who">Learners: {_e(", ".join(names))}</span>'


def _group_list(groups, label, empty, functions=()):
    """Groups of one kind, under one <h3> per function (in the order of the notebook), the most common first."""
    if not groups:
        return [f'<p class="muted">{_e(empty)}</p>']
    parts, by_fn = [], {}
    for fn in functions:
        by_fn[fn] = []
    for g in groups:
        by_fn.setdefault(g["function"], []).append(g)
    for fn, gs in by_fn.items():
        if not gs:
            continue
        parts.append(f"<h3>{_id(fn)}</h3>")
        parts.append("<ul>")
        for g in gs:
            text = label(g)
            parts.append(f'<li><span class="count">{_learners(len(g["learners"]))}</span>'
                         + (f": {_e(text)}" if text else "") + _who(g["learners"]) + "</li>")
        parts.append("</ul>")
    return parts


def _pairs(items, empty):
    if not items:
        return [f'<p class="muted">{_e(empty)}</p>']
    return ["<ul>"] + [f"<li><strong>{_e(s)}</strong>: {_e(p)}</li>" for s, p in items] + ["</ul>"]


def render(assignment, info, png):
    scores, top = info["scores"], info["max_score"]
    if scores:
        stats = (f"{len(scores)} scored, out of {top:g}: mean {statistics.mean(scores):.2f}, "
                 f"median {statistics.median(scores):g}, min {min(scores):g}, max {max(scores):g}.")
    else:
        stats = "No submission was graded."
    counts = (f"{info['rows']} submissions: {len(info['not_attempted'])} not attempted, "
              f"{len(info['not_graded'])} not graded, {len(info['grader_errors'])} grader errors.")
    p = ['<!DOCTYPE html>', '<html lang="en">', "<head>", '<meta charset="utf-8">',
         '<meta name="viewport" content="width=device-width, initial-scale=1">',
         f"<title>{_e(assignment)}: what the class got wrong</title>", f"<style>{CSS}</style>", "</head>",
         "<body>", "<main>", f"<h1><code>{_id(assignment)}</code>: what the class got wrong</h1>",
         f"<p>{_e(counts)} {_e(stats)}</p>",
         '<p class="muted">Scores and verdicts are the clean re-run\'s (see the instructor chapter); the '
         "mistakes are the ones the checks recognise in the learners' answers.</p>",
         '<h2 id="scores">Scores</h2>', "<figure>",
         f'<img src="data:image/png;base64,{base64.b64encode(png).decode("ascii")}" '
         f'width="{round(FIG_SIZE[0] * 100)}" height="{round(FIG_SIZE[1] * 100)}" '
         f'alt="{_e(histogram_alt(scores, top))}">',
         "<figcaption>Learners per score (submissions that were graded, not attempted ones included)."
         "</figcaption>", "</figure>",
         '<h2 id="pass-rate">Pass rate per test</h2>', '<div class="scroll"><table>',
         "<caption>In the order of the notebook. A test passes when the clean re-run passes it.</caption>",
         '<thead><tr><th scope="col">Test cell</th><th scope="col" class="num">Points</th>'
         '<th scope="col" class="num">Passed</th><th scope="col" class="num">Pass rate</th></tr></thead>',
         "<tbody>"]
    for t in info["tests"]:
        p.append(f'<tr><th scope="row"><code>{_id(t["id"])}</code></th><td class="num">{t["points"]:g}</td>'
                 f'<td class="num">{t["passed"]} of {t["of"]}</td><td class="num">{_rate(t)}</td></tr>')
    p += ["</tbody>", "</table></div>",
          '<h2 id="mistakes">Diagnosed mistakes</h2>',
          '<p class="muted">Per graded function, the known mistakes the learners\' answers matched '
          "(the visible and hidden tests of a function count once).</p>"]
    p += _group_list(info["symptom"], lambda g: g["text"], "No known mistake was recognised.", info["functions"])
    p += ['<h2 id="unrecognised">Unrecognised wrong answers: for a look</h2>',
          '<p class="muted">The function returned an answer the clean re-run failed, and no known '
          "mistake explains it.</p>"]
    p += _group_list(info["unrecognised"], lambda g: "", "None.", info["functions"])
    p += ['<h2 id="not-attempted">Not attempted</h2>']
    p += ([f'<p><span class="count">{_learners(len(info["not_attempted"]))}</span>'
           f'{_who(info["not_attempted"])}</p>'] if info["not_attempted"] else ['<p class="muted">None.</p>'])
    p += ['<h2 id="reference">Used the course\'s reference</h2>',
          '<p class="muted">The graded function called bplib\'s own implementation, which is not available '
          "when notebooks are graded: 0 points for those tests.</p>"]
    p += _group_list(info["reference"], lambda g: "", "None.", info["functions"])
    p += ['<h2 id="other">Other failures</h2>',
          '<p class="muted">The function did not return an answer to judge: it raised, ran out of time or '
          "was not defined.</p>"]
    p += _group_list(info["other"], lambda g: g["text"], "None.", info["functions"])
    p += ['<h2 id="not-graded">Not graded</h2>',
          '<p class="muted">The submission could not be graded; the reason is also in '
          "<code>grades.csv</code>.</p>"]
    p += _pairs(info["not_graded"], "None.")
    p += ['<h2 id="grader-errors">Grader errors: regrade</h2>',
          '<p class="muted">The grader\'s own machinery failed for these learners after its retries: '
          "not the learner's fault. Grade them again.</p>"]
    p += _pairs(info["grader_errors"], "None.")
    p += ["</main>", "</body>", "</html>", ""]
    return "\n".join(p)


def write_report(out_dir, assignment, rows, release):
    """Write ``<out_dir>/report.html``; return (its path, the summary lines to print)."""
    info = analyse(rows, release)
    png = histogram_png(info["scores"], info["max_score"])
    path = os.path.join(out_dir, "report.html")
    with open(path, "w", encoding="utf-8") as f:
        f.write(render(assignment, info, png))
    return path, summary_lines(path, info)
