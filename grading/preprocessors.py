"""An nbgrader preprocessor that bounds what a graded notebook may keep as output."""
from nbgrader.preprocessors import NbGraderPreprocessor
from traitlets import Integer


class CapOutput(NbGraderPreprocessor):
    """Bound what every cell keeps as output (nbgrader's LimitOutput counts lines only, so one 100 MB
    line would reach the gradebook's copy and the feedback page).

    Everything counts, in the cell's order: printed text, errors, and rich outputs (HTML, markdown,
    JSON, SVG, display data) share ``max_chars`` characters per cell; images (PNG/JPEG/GIF, kept whole
    or not at all) share ``max_image_chars``; at most ``max_outputs`` outputs. What does not fit is
    cut, and one note in the cell says how much (1,500 HTML displays no longer make a 29 MB page)."""

    max_chars = Integer(20000).tag(config=True)
    max_image_chars = Integer(1_000_000).tag(config=True)
    max_outputs = Integer(100).tag(config=True)

    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type != "code":
            return cell, resources
        total, images, kept, dropped, dropped_chars = 0, 0, [], 0, 0
        for out in cell.get("outputs", []):
            kind = out.get("output_type")
            if len(kept) >= self.max_outputs:
                dropped, dropped_chars = dropped + 1, dropped_chars + len(str(out))
                continue
            if kind == "stream":
                text = out.get("text", "")
                text = "".join(text) if isinstance(text, list) else str(text)
                room = max(self.max_chars - total, 0)
                if len(text) > room:
                    if room == 0:
                        dropped, dropped_chars = dropped + 1, dropped_chars + len(text)
                        continue
                    out["text"] = text[:room] + f"\n[grader: output cut, {len(text) - room} more characters]\n"
                total += len(text)
            elif kind == "error":
                out["evalue"] = str(out.get("evalue", ""))[:2000]
                out["traceback"] = [str(t)[:2000] for t in out.get("traceback", [])[:60]]
                total += len(out["evalue"])
            elif kind in ("display_data", "execute_result"):
                data = out.get("data", {})
                size = {m: len(v) if isinstance(v, str) else len(str(v)) for m, v in data.items()}
                img = sum(n for m, n in size.items() if m in ("image/png", "image/jpeg", "image/gif"))
                txt = sum(size.values()) - img
                if total + txt > self.max_chars or images + img > self.max_image_chars:
                    dropped, dropped_chars = dropped + 1, dropped_chars + txt + img
                    continue
                total, images = total + txt, images + img
            kept.append(out)
        if dropped:
            import nbformat
            kept.append(nbformat.v4.new_output("stream", name="stdout", text=(
                f"\n[grader: output cut, {dropped} more output(s), {dropped_chars} characters: a cell keeps at "
                f"most {self.max_chars} characters of text and HTML, {self.max_image_chars} of images]\n")))
        cell["outputs"] = kept
        return cell, resources


class HideTestTracebacks(NbGraderPreprocessor):
    """In feedback: a failing test cell shows its verdict (``AssertionError: <message>``), not the
    traceback, whose context lines would quote the hidden test code.

    The verdict comes first: when the cell already printed it (the grader writes the re-run's
    verdict as a stream, then the error: grading/worker.py ``put_verdicts``), the error below it
    is one short line instead of the same verdict again; errors always follow the cell's other
    outputs, as they do when a cell runs."""

    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type == "code" and cell.metadata.get("nbgrader", {}).get("grade"):
            outputs = cell.get("outputs", [])
            shown = "".join(str(o.get("text", "")) for o in outputs if o.get("output_type") == "stream")
            for out in outputs:
                if out.get("output_type") == "error":
                    ename, evalue = out.get("ename", "Error"), str(out.get("evalue", ""))
                    first = evalue.strip().splitlines()[0].strip() if evalue.strip() else ""
                    if first and first in shown:
                        out["traceback"] = [f"{ename}: this test failed (the verdict above says why)"]
                    else:
                        out["traceback"] = [f"{ename}: {evalue}"]
            cell["outputs"] = ([o for o in outputs if o.get("output_type") != "error"]
                               + [o for o in outputs if o.get("output_type") == "error"])
        return cell, resources
