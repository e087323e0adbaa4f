"""``python -m litefuse`` = the ``litefuse`` command."""

from .cli import main

main()
