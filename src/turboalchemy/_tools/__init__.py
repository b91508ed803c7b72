"""File- and database-level tools: migrate, backup, health, advise, copy (private; re-exported by turboalchemy)."""
