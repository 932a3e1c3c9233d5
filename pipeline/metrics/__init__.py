"""The metrics: SWD (swd.py), the Inception metrics through torch-fidelity (inception.py), the copy
check (nearest.py). This file imports no torch: the report and the plots read the names below."""

# What an evaluation during training measures, each a column of metrics.csv (SWD always; FID and KID
# when the Inception weights are at hand), lower is better for each.
EVAL_METRICS = ("swd", "fid", "kid")
