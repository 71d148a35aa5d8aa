"""The catalogue of wrong implementations (one module per assignment) and the course helpers
that grade them with the real nbgrader commands (see _course.py)."""
