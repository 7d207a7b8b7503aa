"""`IssueDep`: the issue named by the `{issue_id}` path parameter, or 404."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from app.issues import service
from app.kit.deps import SessionDep
from app.kit.ids import IdPath
from app.models import Issue


async def get_issue(session: SessionDep, issue_id: IdPath) -> Issue:
    return await service.get(session, issue_id)


IssueDep = Annotated[Issue, Depends(get_issue)]
