"""The report layer of the `tables` stage: names, LaTeX formatting, prose and figures."""
