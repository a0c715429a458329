"""Jobs: one folder per job (the truth), a SQLite index over them, the scheduler and the workers."""
