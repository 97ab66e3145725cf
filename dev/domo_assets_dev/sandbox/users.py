"""The sandbox's Domo users: who they are, independent of their secrets."""

from __future__ import annotations

from dataclasses import dataclass

ANALYST = "analyst"
WEST_MANAGER = "west_manager"
HR_ADMIN = "hr_admin"
MAIN_USER = ANALYST


@dataclass(frozen=True)
class User:
    """A Domo user.

    Attributes:
        name: Short name used throughout the sandbox (``analyst``...).
        id: Domo's numeric user id.
        display_name: Display name.
        email: E-mail address.
        role: Domo role name.
    """

    name: str
    id: int
    display_name: str
    email: str
    role: str

    def to_api(self) -> dict[str, object]:
        """Return the user as `GET /api/content/v2/users/me` shows it."""
        return {
            "id": self.id,
            "displayName": self.display_name,
            "emailAddress": self.email,
            "role": self.role,
        }

    def owner_ref(self) -> dict[str, object]:
        """Return the ``owner`` object of DataSet metadata."""
        return {"id": self.id, "name": self.display_name, "type": "USER"}


USERS: dict[str, User] = {
    user.name: user
    for user in (
        User(ANALYST, 1_874_021_337, "Ana Lyst", "analyst@sandbox.example", "Privileged"),
        User(WEST_MANAGER, 1_874_021_338, "Wes Manager", "west@sandbox.example", "Participant"),
        User(HR_ADMIN, 1_874_021_339, "Harriet Admin", "hr@sandbox.example", "Admin"),
    )
}
