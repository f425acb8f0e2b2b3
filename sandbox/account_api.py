"""Account information: the portal's id (HubSpot's `GET /account-info/v3/details`)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from sandbox.api_base import ApiBase, respond


class AccountApi(ApiBase):
    """Account details: which portal a token belongs to."""

    async def account_details(self, request: Request) -> Response:
        return respond(
            {
                "portalId": self.store.portal_id,
                "accountType": "SANDBOX",
                "timeZone": "UTC",
                "companyCurrency": "USD",
                "additionalCurrencies": [],
                "utcOffset": "+00:00",
                "utcOffsetMilliseconds": 0,
                "uiDomain": "app.hubspot.com",
                "dataHostingLocation": "na1",
            }
        )
