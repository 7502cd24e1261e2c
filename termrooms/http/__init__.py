"""HTTP routes: thin layers that parse, call a handler, and render the contract's JSON."""
