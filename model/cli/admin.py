"""Administration commands: the database schema (``sprout db``), reviewer accounts (``sprout users``) and the API's
login on the MLflow server (``sprout mlflow``)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from model.cli.invocation import services
from model.cli.output import command, emit, err
from model.core.settings import get_settings

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from db.models import User

db_app = typer.Typer(help="Database maintenance.", no_args_is_help=True)
users_app = typer.Typer(help="Reviewer accounts.", no_args_is_help=True)
mlflow_app = typer.Typer(help="Logins on the MLflow server (run with MLflow's admin login).", no_args_is_help=True)

UserArg = Annotated[str, typer.Argument(help="User name.")]


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply database migrations up to the latest revision."""
    from db.migrate import head_revision, upgrade
    from model.core.security import secure_state_dir

    with command():
        settings = get_settings()
        secure_state_dir(settings.home)
        upgrade(settings.resolved_database_url,
                split_key=settings.split_key.get_secret_value() if settings.split_key else None)
        secure_state_dir(settings.home)
        emit({"upgraded": True, "revision": head_revision()},
             lambda d: err.print(f"database is up to date (revision {d['revision']})"))


def _read_password() -> str:
    """From a prompt on a terminal, else the first line of stdin."""
    if sys.stdin.isatty():
        return str(typer.prompt("Password", hide_input=True, confirmation_prompt=True, err=True))
    return sys.stdin.readline().rstrip("\n")


def _user_row(user: User) -> dict[str, Any]:
    return {"username": user.username, "is_admin": user.is_admin, "is_active": user.is_active,
            "created_at": user.created_at}


@users_app.command("add")
def users_add(
    name: UserArg,
    admin: Annotated[bool, typer.Option("--admin", help="May also promote, roll back and force a retrain.")] = False,
) -> None:
    """Add a reviewer account; the password (≥ 12 characters) comes from a prompt, or from stdin when piped."""
    from model.core.accounts import create_user

    with command():
        password = _read_password()
        svc = services()
        with svc.session() as session:
            user = create_user(session, username=name, password=password, is_admin=admin)
            emit(_user_row(user), lambda d: err.print(f"added {'admin' if d['is_admin'] else 'reviewer'} "
                                                      f"{d['username']}"))


@users_app.command("list")
def users_list() -> None:
    """Every account with its role and whether it is active."""
    from model.core.accounts import list_users

    with command():
        svc = services()
        with svc.session() as session:
            rows = [_user_row(u) for u in list_users(session)]

        def human(d: dict[str, Any]) -> None:
            for u in d["users"]:
                role = "admin" if u["is_admin"] else "reviewer"
                Console().print(f"{u['username']}  {role}{'' if u['is_active'] else '  (disabled)'}")

        emit({"users": rows}, human)


def _change_user(change: Callable[[Session], User], describe: Callable[[dict[str, Any]], str]) -> None:
    """Run ``change(session)`` (it returns the changed user) and report the account."""
    with command():
        svc = services()
        with svc.session() as session:
            user = change(session)
            emit(_user_row(user), lambda d: err.print(describe(d)))


@users_app.command("disable")
def users_disable(
    name: UserArg,
    enable: Annotated[bool, typer.Option("--enable", help="Re-enable instead.")] = False,
) -> None:
    """Disable an account: its tokens stop working at once, and stay refused after --enable."""
    from model.core.accounts import set_active

    _change_user(lambda session: set_active(session, username=name, active=enable),
                 lambda d: f"{d['username']} is {'active' if d['is_active'] else 'disabled'}")


@users_app.command("set-password")
def users_set_password(name: UserArg) -> None:
    """Set a new password (≥ 12 characters), from a prompt or stdin; the account's existing sessions end."""
    from model.core.accounts import set_password

    password = _read_password()
    _change_user(lambda session: set_password(session, username=name, password=password),
                 lambda d: f"password of {d['username']} changed")


@users_app.command("set-admin")
def users_set_admin(
    name: UserArg,
    revoke: Annotated[bool, typer.Option("--revoke", help="Take the admin role away instead.")] = False,
) -> None:
    """Make an account an admin (promote, roll back, force a retrain), or ``--revoke`` it."""
    from model.core.accounts import set_admin

    _change_user(lambda session: set_admin(session, username=name, admin=not revoke),
                 lambda d: f"{d['username']} is {'an admin' if d['is_admin'] else 'a reviewer'}")


@mlflow_app.command("serving-login")
def mlflow_serving_login(name: UserArg) -> None:
    """Create (or reset) the API's MLflow user, with serving's permissions only; password from a prompt or stdin."""
    from model.runtime.mlflow_access import grant_serving_access

    with command():
        password = _read_password()
        granted = grant_serving_access(get_settings(), name, password)
        emit(granted, lambda d: err.print(f"MLflow user {d['username']}: {d['experiment']}, {d['registered_model']}"))
