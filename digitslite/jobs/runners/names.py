"""File names inside job folders that other jobs, the server and downloads rely on."""

DATASET_DIR = "dataset"  # a dataset job's LMDBs in DIGITS' layout: train_db/, val_db/, dataset.json
CHECK_REPORT_FILE = "check-report.json"  # a dataset job's validation report when its check failed
DATASET_INFO_FILE = "dataset.json"  # class names and palette (a model and a pretrained job keep a copy)
NETWORK_FILE = "network.prototxt"  # the all-in-one train/val/deploy network
TRAIN_VAL_FILE = "train_val.prototxt"  # the network bound to the dataset's LMDBs
DEPLOY_FILE = "deploy.prototxt"
SOLVER_FILE = "solver.prototxt"
SNAPSHOT_PREFIX = "snapshot"  # snapshot_iter_N.caffemodel / .solverstate
PRETRAINED_WEIGHTS = "weights.caffemodel"
OUTPUTS_DIR = "outputs"  # an inference job's class maps and overlays
RESULTS_FILE = "results.json"  # an inference job's list of outputs and scores
