"""The commands: each parses its command line, resolves the config, calls one function and
reports."""
