"""grading/threadsafe_ast.py: every ``ast.parse`` in the process (the grader's, the test threads',
the standard library's traceback formatting) takes one lock (CPython 3.11, gh-106905)."""
import ast
import threading
import traceback

from grading import threadsafe_ast


def test_ast_parse_waits_for_the_lock_in_every_caller():
    started, done = threading.Event(), threading.Event()

    def parse_in_a_thread():
        started.set()
        try:
            raise ValueError("x")
        except ValueError:
            traceback.format_exc()          # 3.11's traceback parses the failing line with ast.parse
        ast.parse("y = 1")
        done.set()

    with threadsafe_ast.LOCK:
        t = threading.Thread(target=parse_in_a_thread, daemon=True)
        t.start()
        assert started.wait(10)
        assert not done.wait(0.5), "ast.parse ran while another thread held the lock"
    assert done.wait(10)
    t.join(10)


def test_install_is_idempotent_and_keeps_parse_working():
    first = ast.parse
    assert threadsafe_ast.install() is first
    assert isinstance(ast.parse("a + b", mode="eval"), ast.Expression)
    assert ast.parse.__wrapped__ is not None
