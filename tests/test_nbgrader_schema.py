"""grading/nbgrader_schema.py: nbgrader's cell-metadata check with each schema checked once (issue 18)
must accept and refuse exactly what ``jsonschema.validate`` does, with the same error."""
import copy

import jsonschema
import pytest
from nbgrader.nbgraderformat import MetadataValidator, ValidationError
from nbformat.v4 import new_code_cell

from grading import nbgrader_schema

GOOD = {"grade": True, "solution": False, "grade_id": "t1", "points": 2, "locked": True, "schema_version": 3}
CELLS = [GOOD, dict(GOOD, points="two"), dict(GOOD, grade="yes"), {k: v for k, v in GOOD.items() if k != "grade_id"},
         dict(GOOD, locked=None), dict(GOOD, points=-1), dict(GOOD, extra=1)]


def schema():
    return MetadataValidator().schema


def outcome(validate, meta):
    try:
        validate(meta, schema())
    except jsonschema.ValidationError as e:
        return str(e)
    return None


@pytest.mark.parametrize("meta", CELLS)
def test_it_accepts_and_refuses_what_jsonschema_does_with_the_same_error(meta):
    assert outcome(nbgrader_schema.validate, meta) == outcome(jsonschema.validate, meta)


def test_it_refuses_a_bad_cell():
    assert outcome(nbgrader_schema.validate, dict(GOOD, points="two")).startswith("'two' is not of type 'number'")


def test_a_good_cell_passes_and_the_schema_is_checked_once(monkeypatch):
    nbgrader_schema._VALIDATORS.clear()
    calls = []
    kind = jsonschema.validators.validator_for(schema())
    real = kind.check_schema.__func__
    monkeypatch.setattr(kind, "check_schema", classmethod(lambda cls, s: (calls.append(1), real(cls, s))[1]))
    for _ in range(5):
        nbgrader_schema.validate(copy.deepcopy(GOOD), schema())      # a new copy of the schema each time
    assert calls == [1]


def test_nbgraders_validator_uses_it_after_install():
    nbgrader_schema.install()
    nbgrader_schema.install()                                          # idempotent
    from nbgrader.nbgraderformat import common
    assert common.jsonschema.validate is nbgrader_schema.validate
    assert common.jsonschema.ValidationError is jsonschema.ValidationError   # the rest is the real module
    v = MetadataValidator()
    v.validate_cell(new_code_cell(metadata={"nbgrader": dict(GOOD)}))
    with pytest.raises(ValidationError):
        v.validate_cell(new_code_cell(metadata={"nbgrader": dict(GOOD, points="two")}))
