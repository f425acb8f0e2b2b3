"""A local, stateful HubSpot-compatible CRM server for the demo, the tests and the benchmarks."""
