"""CLI subcommands, one module each with ``register(subparsers)``; see aiops.cli.COMMANDS."""
