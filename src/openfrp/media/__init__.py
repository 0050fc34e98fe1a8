"""Display sources and the frame encoding sent as binary video frames."""
