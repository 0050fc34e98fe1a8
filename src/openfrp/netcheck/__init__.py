"""STUN and TURN probes and the preflight verdict (5009, 5010, 5019)."""
