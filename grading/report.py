"""grades.csv (one row per student) and the summary printed at the end of a run."""
import csv
import re
import statistics

# control characters (terminal escapes, carriage returns, bidi overrides) in text that may have come from
# a learner's kernel: removed before anything is printed or written to grades.csv
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069]")


def clean(text):
    return CONTROL.sub("", str(text))


def status_of(row):
    """``ok``, or why a person should look (problems first, then flags)."""
    reasons = ([row["problem"]] if row.get("problem") else []) + list(dict.fromkeys(row.get("flags", [])))
    return "ok" if not reasons else clean("; ".join(str(x) for x in reasons))


def write_csv(path, rows, release):
    from .class_report import mistakes_of      # the checks' diagnosed symptoms, "<function>: <symptom>"
    test_ids = [c.metadata["nbgrader"]["grade_id"] for c in release.cells
                if c.metadata.get("nbgrader", {}).get("grade")]
    fields = ["student", "score", "max_score", "status", "notes", "submitted_as", "feedback", "similarity"] + test_ids
    fields.append("mistakes")                   # last: the columns before it stay where other tools read them
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        for sid in sorted(rows):
            r = rows[sid]
            grader_error = str(r.get("problem", "")).startswith("grader error")
            line = {"student": sid, "score": "" if grader_error else f"{r['score']:g}",
                    "max_score": f"{r['max_score']:g}",
                    "status": status_of(r), "notes": clean("; ".join(r.get("notes", []))),
                    "submitted_as": clean(r.get("submitted_as", "")), "feedback": r.get("feedback", ""),
                    "similarity": clean("; ".join(r.get("similarity", [])))}
            for gid in test_ids:
                cell = r.get("cells", {}).get(gid)
                line[gid] = "" if cell is None else f"{cell['score']:g}"
            line["mistakes"] = "; ".join(mistakes_of(r, test_ids))
            w.writerow(line)
    return path


def print_summary(assignment, rows, csv_path, seconds, workers, isolation, rerun_isolation=(), report_lines=()):
    graded = [r for r in rows.values() if not r.get("problem")]
    scores = [r["score"] for r in graded]
    top = max((r["max_score"] for r in rows.values()), default=0)
    print()
    print(f"== {assignment}: {len(graded)} of {len(rows)} submissions graded "
          f"in {seconds:.0f} s ({workers}) ==")
    if scores:
        print(f"scores out of {top:g}: mean {statistics.mean(scores):.2f}, median {statistics.median(scores):g}, "
              f"min {min(scores):g}, max {max(scores):g}")
        bins = {}
        for s in scores:
            bins[s] = bins.get(s, 0) + 1
        width = max(bins.values())
        for s in sorted(bins):
            bar = "#" * max(1, round(40 * bins[s] / width))
            print(f"  {s:>6g} | {bar} {bins[s]}")
    look = [(sid, r) for sid, r in sorted(rows.items()) if status_of(r) != "ok"]
    print(f"needs a person's look: {len(look)}")
    for sid, r in look:
        print(f"  {clean(sid)} ({r['score']:g}/{r['max_score']:g}): {status_of(r)}")
    notes = [(sid, r["notes"]) for sid, r in sorted(rows.items()) if r.get("notes")]
    if notes:
        print(f"notes: {len(notes)}")
        for sid, ns in notes:
            print(f"  {clean(sid)}: {clean('; '.join(ns))}")
    for iso in sorted({re.sub(r"uid \d+", "a uid of its own per worker", i) for i in isolation}):
        print("kernel sandbox: " + clean(iso.replace("\n", "; ")))
    for iso in sorted({re.sub(r"uid \d+", "a uid of its own per worker", i) for i in rerun_isolation}):
        lines = [ln for ln in iso.splitlines() if not ln.startswith("mount-namespace hides")]
        print("clean re-run of the graded functions: " + clean("; ".join(lines)))
    for line in report_lines:
        print(line)
    print(csv_path)
