"""One module per ``liveportrait`` subcommand (see ``liveportrait.cli``)."""
