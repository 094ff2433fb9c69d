"""Files, figures and reports made from runs and sweeps."""
