"""One module per command; each has `main(options, args) -> exit status`."""
