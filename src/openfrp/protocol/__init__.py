"""Sans-I/O core: state machines that take events and the time and return actions.

Nothing here opens a socket, awaits, or reads a clock: time arrives as integer milliseconds,
which is what lets every timing rule be tested with a fake clock.
"""
