"""An N+1 caught by turboalchemy's guard and fixed with selectinload, with the query counts before and after.

python examples/n_plus_one.py
"""

from __future__ import annotations

from sqlalchemy import ForeignKey, String, create_engine, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship, selectinload

import turboalchemy


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(50))
    posts: Mapped[list[Post]] = relationship(back_populates="author")


class Post(Base):
    __tablename__ = "posts"
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    title: Mapped[str] = mapped_column(String(100))
    author: Mapped[User] = relationship(back_populates="posts")


def post_counts(session: Session, eager: bool) -> dict[str, int]:
    """Each user's name and number of posts: the page that quietly runs one query per user."""
    stmt = select(User).options(selectinload(User.posts)) if eager else select(User)
    return {user.name: len(user.posts) for user in session.scalars(stmt)}


def main() -> None:
    engine = create_engine("sqlite://")  # in memory: the example leaves nothing behind
    Base.metadata.create_all(engine)
    with Session(engine) as session:
        session.add_all(User(name=f"user{u}", posts=[Post(title=f"p{p}") for p in range(3)]) for u in range(50))
        session.commit()

    with Session(engine) as session, turboalchemy.count_queries(session) as before:
        post_counts(session, eager=False)
    print(f"before: {before.total} queries (1 for the users, then 1 per user for their posts)")

    with Session(engine) as session:
        try:
            with turboalchemy.no_n_plus_one(session, threshold=5):
                post_counts(session, eager=False)
        except turboalchemy.NPlusOneError as caught:
            print(f"the guard caught it: NPlusOneError\n{caught}")

    with Session(engine) as session, turboalchemy.count_queries(session) as after:
        with turboalchemy.no_n_plus_one(session, threshold=5):
            counts = post_counts(session, eager=True)
    print(f"after: {after.total} queries with selectinload(User.posts), same result: {sum(counts.values())} posts")


if __name__ == "__main__":
    main()
