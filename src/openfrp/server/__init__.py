"""The openfrp server: an ASGI app whose sessions run the sans-I/O core."""
