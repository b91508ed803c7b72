"""The async data-layer comparison under HTTP load (issue 8): the load generator first; the apps follow."""
