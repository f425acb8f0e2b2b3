"""Prefect flows: thin orchestration over dealsync/."""
