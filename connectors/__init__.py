"""One module per CRM, on a small shared HTTP base."""
