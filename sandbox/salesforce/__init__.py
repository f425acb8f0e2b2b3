"""A local Salesforce-compatible server: TLS, OAuth sessions, sObjects, and Salesforce's errors."""
