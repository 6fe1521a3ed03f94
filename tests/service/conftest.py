"""Fixtures of the service tests: a project with tokens, an API client, a webhook receiver."""

import pytest
from fastapi.testclient import TestClient

from retrainer.project import Project
from retrainer.service import create_app
from retrainer.service.auth import create_token
from tests.service.service_helpers import Receiver, service_settings


@pytest.fixture
def service_project(tmp_path):
    def make(**overrides):
        return Project.from_dict(service_settings(tmp_path, **overrides), root=tmp_path)

    return make


@pytest.fixture
def api(service_project):
    """A project, its app's test client and a read and a write token."""
    project = service_project()
    _, read = create_token(project.store, "reader", scope="read")
    _, write = create_token(project.store, "writer", scope="write")
    client = TestClient(create_app(project, allowed_hosts=["testserver"]))
    return {
        "project": project,
        "client": client,
        "read": {"Authorization": f"Bearer {read}"},
        "write": {"Authorization": f"Bearer {write}"},
    }


@pytest.fixture
def receiver():
    made = []

    def make(codes=(200,), location=None):
        made.append(Receiver(codes, location))
        return made[-1]

    yield make
    for r in made:
        r.close()


@pytest.fixture(scope="session")
def many_batches(tmp_path_factory):
    """A project of 600 batches (tests.service.many_batches), for reading only."""
    from tests.service.many_batches import grow, more_versions, real_days

    project = real_days(tmp_path_factory.mktemp("many-batches"))
    grow(project, 600)
    more_versions(project, 40)
    return project
