"""Users and posts: the smallest schema with an N+1 in it (posts.user_id deliberately has no index)."""

from __future__ import annotations

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(50))
    email: Mapped[str] = mapped_column(String(100))
    posts: Mapped[list[Post]] = relationship(back_populates="author", order_by="Post.id")


class Post(Base):
    __tablename__ = "posts"
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    title: Mapped[str] = mapped_column(String(100))
    author: Mapped[User] = relationship(back_populates="posts")


def seed(session: Session, users: int = 20, posts_each: int = 3) -> None:
    for u in range(1, users + 1):
        session.add(
            User(
                id=u,
                name=f"user{u}",
                email=f"u{u}@example.org",
                posts=[Post(id=u * 100 + p, title=f"post {p} of {u}") for p in range(posts_each)],
            )
        )
    session.commit()
