"""Where a number was computed, for provenance blocks (private)."""

from __future__ import annotations

import torch

__all__ = ["device_label"]


def device_label(device: torch.device | str) -> str:
    """``"cpu"``, or ``"cuda:<index> (<name>)"`` for a CUDA device (the ``device`` of a provenance block).

    Parameters
    ----------
    device : torch.device or str
        A resolved device (not ``"auto"``).
    """
    device = torch.device(device)
    if device.type == "cuda":
        index = torch.cuda.current_device() if device.index is None else device.index
        return f"cuda:{index} ({torch.cuda.get_device_name(index)})"
    return device.type
