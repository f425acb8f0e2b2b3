"""What a CRM user's tool does in the benchmarks: one call, waiting out the portal's rate limit."""

from __future__ import annotations

import time
from typing import Any

import requests


def user_call(
    base_url: str, token: str, method: str, path: str, **kwargs: Any
) -> requests.Response:
    """Send one call as a user would; on 429, wait a second and try again."""
    while True:
        response = requests.request(
            method,
            f"{base_url}{path}",
            headers={"Authorization": f"Bearer {token}"},
            timeout=60,
            **kwargs,
        )
        if response.status_code != 429:
            response.raise_for_status()
            return response
        time.sleep(1.0)
