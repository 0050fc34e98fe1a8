"""The Python terminal: asyncio and websockets around the terminal state machine."""
