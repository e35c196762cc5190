"""Repository-wide pytest configuration."""

# plugins/_template is a skeleton to copy, not an installed plugin: its "is it installed" test
# would fail by design. tests/test_plugins.py installs a renamed copy and runs that test.
collect_ignore = ["plugins/_template"]
