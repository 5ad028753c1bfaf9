"""Sub-commands of the `cosmicai` CLI.

Each module here defines `register(subparsers)`, which adds its parser and sets
`run=<function(args) -> int>` as the default. Keep torch and other heavy imports
inside the run function so `cosmicai --help` stays fast.
"""

COMMAND_MODULES: tuple[str, ...] = (
    "convert_checkpoint",
    "inspect",
    "predict",
    "calibrate_uncertainty",
    "bench",
    "bench_system",
    "costs",
    "invoke",
    "make_dataset",
    "prepare",
    "partition",
    "export",
    "scale_test",
    "train",
)
