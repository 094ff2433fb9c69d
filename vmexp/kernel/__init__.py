"""The simulated kernel: address spaces, page tables, frames, swap, reclaim, OOM."""
