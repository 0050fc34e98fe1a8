"""The person's hands in the session: keyboard and mouse injection into the X display."""
