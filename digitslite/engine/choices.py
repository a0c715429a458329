"""The engine's named choices and default solver, in a module without torch.

The CLI's help, the API's schemas and the pages list these without loading torch (a second or
more); the modules that act on them (solver.py, speed.py, infer.py) key their tables by them, and
a test holds the two equal.
"""

# Caffe's update rules (SolverParameter.type), as digitslite.engine.solver implements them.
SOLVER_TYPES = ("SGD", "Nesterov", "AdaGrad", "RMSProp", "AdaDelta", "Adam")
# The solver of a network that brings none (the server's model jobs, the New model form, `train`).
DEFAULT_SOLVER = {"type": "SGD", "base_lr": 0.01, "lr_policy": "fixed", "momentum": 0.9,
                  "weight_decay": 0.0005, "display": 20}
# Orders of the micro-batches' passes through a pipeline (digitslite.engine.pipeline.training);
# "auto": 1F1B where it applies (at least as many micro-batches as stages), GPipe otherwise.
PIPELINE_SCHEDULES = ("auto", "gpipe", "1f1b")
# Mixed-precision forward passes (digitslite.engine.speed); off when none is chosen.
AMP_MODES = ("bf16", "fp16")
# Channel orders an inference input may take (digitslite.engine.infer).
CHANNEL_ORDERS = ("bgr", "rgb", "gray")
# Images larger than this on either side are run in overlapping tiles (digitslite.engine.infer).
DEFAULT_MAX_TILE = 1024
