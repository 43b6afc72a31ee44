"""The one exception type for bad input.

Anything the user can fix (a config key, a file, a record) raises `UsageError` with a one-line message
that names the file, record and field. The CLI prints it as `alignlab: error: ...` and exits with 2.
"""


class UsageError(Exception):
    """Bad input the user can fix; printed as one line, exit code 2."""
