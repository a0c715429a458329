"""The tasks a dataset is built for, named once for the command line, the API and the pages.

segmentation: images and label maps paired by name; colorization: colour photos alone, the targets
derived from each photo (digitslite.datasets.colorize).
"""
SEGMENTATION, COLORIZATION = "segmentation", "colorization"
DATASET_TASKS = (SEGMENTATION, COLORIZATION)
