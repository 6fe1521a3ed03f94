"""The service tests run on the configured store: PostgreSQL when RETRAINER_TEST_DATABASE_URL is
set (one schema per test folder), SQLite otherwise, and tests never see each other's rows."""

from retrainer.project import Project
from retrainer.service.auth import create_token, list_tokens
from tests.conftest import DATABASE_URL
from tests.service.service_helpers import service_settings


def test_the_service_store_is_the_configured_database(service_project, tmp_path_factory):
    project = service_project()
    assert project.store.engine.dialect.name == ("postgresql" if DATABASE_URL else "sqlite")
    create_token(project.store, "mine", scope="read")
    again = service_project()  # the same folder: the same store, like reopening the file
    assert [t.name for t in list_tokens(again.store)] == ["mine"]
    other_root = tmp_path_factory.mktemp("other")
    other = Project.from_dict(service_settings(other_root), root=other_root)
    assert list_tokens(other.store) == []
