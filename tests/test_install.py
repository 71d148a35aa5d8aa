"""What `make install` leaves in the venv (Makefile)."""
import importlib.util


def test_the_slow_optional_iri_checker_is_not_installed():
    # rfc3987-syntax (an optional extra of jsonschema, pulled in by jupyter-events) builds an Earley
    # grammar when imported: 1.9 CPU-s on every `import nbformat` (each nbgrader command, grading
    # process and test run). The Makefile uninstalls it; jsonschema then skips its IRI format check.
    assert importlib.util.find_spec("rfc3987_syntax") is None, \
        "rfc3987-syntax is installed: run `make install` (its Makefile step uninstalls it)"
