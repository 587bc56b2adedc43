"""Numbers both flows use, free of I/O: task and segment metrics, drift effect sizes and their
calibration on the reference, label-free performance estimation, power warnings, the reference profile."""
