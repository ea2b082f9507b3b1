"""Who is signed in, and may they do this? Dependencies of the console's routes.

`SignedIn` is the live session behind the cookie (none: off to the sign-in page).
`Allowed("org.list")` asks the admin policy, through the very function the API's
`Permit` uses (`gateway.api.admin_deps.authorize`), so a refusal is the same 403 with
the same reason and is audited the same way. `can` asks without recording anything,
only to decide which controls a page shows; the server decides again on every POST.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request

from gateway.admin import permission
from gateway.api.admin_deps import authorize
from gateway.console import csrf
from gateway.console.sessions import COOKIE, Session, load_session
from gateway.errors import GatewayError
from gateway.reasons import Reason
from gateway.runtime import Runtime


class SignInRequired(GatewayError):
    """No live session: answered with a redirect to the sign-in page."""

    status = 401


def get_runtime(request: Request) -> Runtime:
    # The console is a mounted sub-application: the runtime lives on the gateway's app.
    runtime: Runtime = request.app.state.gateway.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


async def signed_in(request: Request, rt: RuntimeDep) -> Session:
    session = await load_session(rt.admin.engine, token=request.cookies.get(COOKIE))
    if session is None:
        raise SignInRequired(Reason.SIGN_IN_REQUIRED, "Sign in to use the console.")
    return session


SessionDep = Annotated[Session, Depends(signed_in)]


def allowed(*actions: str) -> Callable[..., Awaitable[Session]]:
    """A dependency: the session, once the admin policy allows each action on the target
    (the organization of the path, if any)."""

    async def check(request: Request, rt: RuntimeDep, session: SessionDep) -> Session:
        target = page_target(request)
        for action in actions:
            await authorize(rt, actor=session.actor, action=action, target=target)
        return session

    return check


def Allowed(*actions: str) -> Any:
    """`session: Annotated[Session, Allowed("org.list")]`."""
    return Depends(allowed(*actions))


def page_target(request: Request) -> dict[str, Any]:
    org_id = request.path_params.get("org_id")
    return {"org_id": org_id} if isinstance(org_id, str) else {}


async def can(rt: Runtime, session: Session, action: str, target: dict[str, Any]) -> bool:
    """Would the policy allow it? For showing controls only; nothing is recorded."""
    decision = await permission.decide(
        rt.admin.policy, rt.admin.engine, actor=session.actor, action=action, target=target
    )
    return decision.allow


@dataclass(frozen=True, slots=True)
class Posted:
    """A change asked for by a signed-in user: its session and its (CSRF-checked) form."""

    session: Session
    form: dict[str, str]


# Form fields the admin policy judges, as the API's `Permit` passes body fields.
_TARGET_FIELDS = ("tier",)


def posted(action: str) -> Callable[..., Awaitable[Posted]]:
    """A dependency for every console change: a live session, the form's CSRF token,
    then the admin policy's allow for `action` (refusals audited, as for the API)."""

    async def check(request: Request, rt: RuntimeDep, session: SessionDep) -> Posted:
        form = await csrf.read_form(request)
        csrf.require_token(form, session.csrf)
        target = page_target(request)
        target |= {k: form[k] for k in _TARGET_FIELDS if form.get(k)}
        await authorize(rt, actor=session.actor, action=action, target=target)
        # Permitted: a refusal the move meets later (its state: 409 proof_missing, 404) is
        # audited by the console's error handler, as the API's is.
        request.state.admin_action = (session.actor, action, target)
        return Posted(session=session, form=form)

    return check


def Change(action: str) -> Any:
    """`change: Annotated[Posted, Change("org.approve")]`."""
    return Depends(posted(action))
