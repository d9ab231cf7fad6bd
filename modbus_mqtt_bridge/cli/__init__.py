"""The command line: one subcommand per module where it has more than a few lines."""
