"""rapids_engage: a GPU-accelerated (RAPIDS) feature store and trainer for user-engagement prediction.

Importing the package imports no GPU library and creates no CUDA context; the
backend (:mod:`rapids_engage.backend`) loads RAPIDS lazily when a GPU run starts.
"""

__version__ = "0.1.0"
