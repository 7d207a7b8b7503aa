"""`IssueDep`: the issue named by the `{issue_id}` path parameter, or 404."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from app.issues import repository
from app.kit.deps import SessionDep
from app.kit.errors import NotFound
from app.kit.ids import IdPath
from app.models import Issue


async def get_issue(session: SessionDep, issue_id: IdPath) -> Issue:
    issue = await repository.get(session, issue_id)
    if issue is None:
        raise NotFound(f"no issue with id {issue_id}")
    return issue


IssueDep = Annotated[Issue, Depends(get_issue)]
