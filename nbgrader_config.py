"""nbgrader mapped onto the course layout: solutions/ is the source, exercises/ the release."""
c = get_config()  # noqa: F821  (provided by nbgrader)
c.CourseDirectory.course_id = "backprop"
c.CourseDirectory.source_directory = "solutions"    # instructor notebooks, single source of truth
c.CourseDirectory.release_directory = "exercises"   # generated for learners by generate_assignment
c.Execute.timeout = 30                               # seconds per cell
