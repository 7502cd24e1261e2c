"""HTTP routes on Klein: parse, call a handler, render the contract's JSON; the OpenAPI
document is built from the same route declarations."""
