"""Pipeline-parallel training (GPipe): the train net cut into stages, one process per stage."""

PIPELINE_FILE = "pipeline.json"    # in the job folder: the stages and the measured bubble
