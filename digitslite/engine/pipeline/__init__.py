"""Pipeline-parallel training (GPipe): the train net cut into stages, one process per stage."""
