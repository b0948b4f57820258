"""How a config is found, checked, trusted, mounted from a stored run and resolved."""
