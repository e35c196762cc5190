"""Implementations of the core subcommands (imported when the command runs)."""
