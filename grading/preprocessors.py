"""An nbgrader preprocessor that bounds what a graded notebook may keep as output."""
from nbgrader.preprocessors import NbGraderPreprocessor
from traitlets import Integer


class CapOutput(NbGraderPreprocessor):
    """Cut every cell's text output to ``max_chars`` (nbgrader's LimitOutput counts lines only,
    so one 100 MB line would reach the gradebook's copy and the feedback page)."""

    max_chars = Integer(20000).tag(config=True)

    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type != "code":
            return cell, resources
        total = 0
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream":
                text = out.get("text", "")
                room = max(self.max_chars - total, 0)
                if len(text) > room:
                    out["text"] = text[:room] + f"\n[grader: output cut, {len(text) - room} more characters]\n"
                total += len(text)
            elif out.get("output_type") == "error":
                out["evalue"] = str(out.get("evalue", ""))[:2000]
                out["traceback"] = [t[:2000] for t in out.get("traceback", [])[:60]]
            elif out.get("output_type") in ("display_data", "execute_result"):
                data = out.get("data", {})
                for mime in list(data):
                    if isinstance(data[mime], str) and len(data[mime]) > self.max_chars:
                        data[mime] = data[mime][:self.max_chars] + "\n[grader: output cut]"
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
