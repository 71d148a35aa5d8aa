"""nbgrader's cell-metadata check, with each schema checked once (issue 18).

nbgrader checks the ``nbgrader`` metadata of every graded cell, in every pass over a notebook, with
``jsonschema.validate(metadata, schema)``. That function first validates the *schema* against the
JSON Schema meta-schema (``check_schema``) and builds a new validator, on every call: for the ~20
cells of an assignment, passed over several times per learner, about 0.07 CPU-s per learner, more
than the validation itself. ``install()`` gives nbgrader's module a ``validate`` that does what
``jsonschema.validate`` does, but checks each schema and builds its validator once: the same
errors, raised the same way (``best_match`` of the validator's errors).
"""
import copy
import json

import jsonschema

_VALIDATORS = {}          # the schema as JSON text -> its validator (nbgrader loads a new copy per validator)


def validate(instance, schema, cls=None, *args, **kwargs):
    """= ``jsonschema.validate(instance, schema)``, with the schema's check and validator cached."""
    if cls is not None or args or kwargs:
        return jsonschema.validate(instance, schema, cls, *args, **kwargs)
    key = json.dumps(schema, sort_keys=True)
    validator = _VALIDATORS.get(key)
    if validator is None:
        kind = jsonschema.validators.validator_for(schema)
        kind.check_schema(schema)
        validator = _VALIDATORS[key] = kind(copy.deepcopy(schema))   # its own copy: nobody else can change it
    error = jsonschema.exceptions.best_match(validator.iter_errors(instance))
    if error is not None:
        raise error


class _JsonSchema:
    """What nbgrader's module sees as ``jsonschema``: the real module, but with this ``validate``."""
    validate = staticmethod(validate)

    def __getattr__(self, name):
        return getattr(jsonschema, name)


def install():
    """Point nbgrader's metadata validators at the cached ``validate`` (idempotent)."""
    from nbgrader.nbgraderformat import common
    if not isinstance(common.jsonschema, _JsonSchema):
        common.jsonschema = _JsonSchema()
