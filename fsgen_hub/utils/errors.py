"""User-facing errors: one line that says what went wrong and what to do.

Library code raises these for every bad input; the CLI prints ``error: <message>`` and exits 2,
without a traceback. Anything else escaping is a bug.
"""


class FsgenError(Exception):
    """A bad input or environment problem the user can fix. The message is one line."""


class ModelNotFoundError(FsgenError):
    """A model id or folder that cannot be resolved."""


class CheckpointError(FsgenError):
    """A checkpoint file that is missing, corrupt, unsafe or of the wrong shape."""


class DataError(FsgenError):
    """Training/evaluation images that are missing, unreadable or too few."""


class OfflineError(FsgenError):
    """Something needs the network (hub download, feature-extractor weights) and it is not there."""


class MissingWeightsError(OfflineError):
    """Weights of a feature extractor (Inception, LPIPS backbone) are not available locally."""
