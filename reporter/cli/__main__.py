"""`python -m reporter.cli` runs the `spine-report` command (where no script is installed)."""

from reporter.cli import main

main()
