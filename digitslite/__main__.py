"""`python -m digitslite` is the `digitslite` command."""
from digitslite.cli import main

main()
