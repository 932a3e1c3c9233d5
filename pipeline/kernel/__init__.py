"""kernel: run the chain on Kaggle's GPUs as a private script kernel; follow it; pull its submission.

One module per job:
- wheels.py: painter's wheel (built from these sources) and torch-fidelity's, which Kaggle's image lacks;
- dataset.py: the private dataset `<user>/painter-wheels` that carries them (and the Inception weights);
- script.py: the kernel folder, kernels/train/ rendered with the run's values, and the GPU choices;
- remote.py: push, status, pull and submit, against Kaggle;
- session.py: what runs ON Kaggle once kernels/train/painter_kernel.py (the bootstrap: GPU check,
  inputs, wheels) has installed painter: the chain inside the session's deadline, and its export;
- sweep.py: a sweep's trials as kernels, a few at a time (`painter sweep --backend kaggle`).

The package imports none of them, so that the CLI can read script.py's GPU choices and session hours
without loading the rest at every start.
"""
