from typing import Any

def fold(
    paths: list[str],
    states: tuple[str, ...],
    n_running: int,
    matched_events: tuple[str, ...],
    matched_codes: tuple[int, ...],
    code_low: int,
    code_bits: tuple[int | None, ...],
    takeover: int,
    threads: int,
) -> tuple[dict[str, Any], list[str], list[bytes], list[tuple[int, int, bool]]] | None: ...
