"""The API's declared parameters (lending/api/middleware.py) are read from the OpenAPI schema the code
generates, once per process. A threaded worker's first requests arrive together: every one of them
must get the parameters, not a crash from drf-spectacular's generator running in several threads."""

import threading

from lending.api import middleware


def test_threads_asking_first_and_together_all_get_the_declared_parameters(monkeypatch):
    monkeypatch.setattr(middleware, "_declared", None)  # as in a process that has not built them
    threads, start = 16, threading.Barrier(16)
    answers: list[object] = []

    def first_request() -> None:
        start.wait()
        try:
            answers.append(middleware.declared_parameters())
        except Exception as crash:  # noqa: BLE001 - the crash is what this test looks for
            answers.append(crash)

    workers = [threading.Thread(target=first_request) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert [type(answer) for answer in answers] == [dict] * threads, answers
    assert all(answer is answers[0] for answer in answers)  # built once
    assert "/lendBook/" in answers[0]  # type: ignore[operator]
