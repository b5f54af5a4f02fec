"""l1refit: re-fit CMS Level-1 trigger muons with small neural networks.

The package holds every computation of the workflow (formats, synthetic detector, skim, training, metrics,
export); the Snakemake rules under ``workflow/`` only call into it.
"""

__version__ = "0.1.0"
