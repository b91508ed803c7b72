"""Tortoise ORM's view of the comparison's two tables (created by SQLAlchemy, never by Tortoise)."""

from tortoise import fields
from tortoise.models import Model


class TUser(Model):
    id = fields.IntField(primary_key=True)
    name = fields.CharField(max_length=100)
    email = fields.CharField(max_length=200, unique=True)

    class Meta:
        table = "users"


class TOrder(Model):
    id = fields.IntField(primary_key=True)
    user_id = fields.IntField()
    item = fields.CharField(max_length=100)
    cents = fields.IntField()

    class Meta:
        table = "orders"
