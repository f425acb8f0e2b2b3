"""dealsync: keep shared deals in sync between a partner CRM and a vendor CRM."""
