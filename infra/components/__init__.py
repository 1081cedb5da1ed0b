"""One construct per component of the deployment (see infra/__init__.py)."""
