"""Python client for the QCOS API: run OpenQASM 2.0 circuits on HPC clusters.

::

    from qcos_sdk import Client

    client = Client()                       # QCOS_URL, QCOS_API_KEY
    job = client.execute(bell_qasm, shots=1024)
    print(job.result(timeout=120).counts)   # {'00': 509, '11': 515}

:class:`Client` (and :class:`AsyncClient`) has a method per endpoint;
errors are the classes of :mod:`qcos_sdk.errors`; ``qcos_sdk.qiskit``
(with the ``[qiskit]`` extra) holds a Qiskit ``BackendV2``.
"""

from qcos_sdk._http import RetryPolicy
from qcos_sdk._version import __version__
from qcos_sdk.aio import AsyncBatch, AsyncClient, AsyncJob
from qcos_sdk.client import Batch, Client, Job
from qcos_sdk.errors import (
    AdminRequired,
    APIError,
    AuthError,
    BatchNotFound,
    CircuitInvalid,
    ConfigurationError,
    Conflict,
    ConnectionFailed,
    InvalidRequest,
    JobFailed,
    JobNotFound,
    JobTimeout,
    NotFound,
    QCOSError,
    QuotaExceeded,
    RateLimited,
    ServerError,
    ServiceUnavailable,
)
from qcos_sdk.models import BatchInfo, JobInfo, JobPage, JobResult

__all__ = [
    "__version__",
    "APIError",
    "AdminRequired",
    "AsyncBatch",
    "AsyncClient",
    "AsyncJob",
    "AuthError",
    "Batch",
    "BatchInfo",
    "BatchNotFound",
    "CircuitInvalid",
    "Client",
    "ConfigurationError",
    "Conflict",
    "ConnectionFailed",
    "InvalidRequest",
    "Job",
    "JobFailed",
    "JobInfo",
    "JobNotFound",
    "JobPage",
    "JobResult",
    "JobTimeout",
    "NotFound",
    "QCOSError",
    "QuotaExceeded",
    "RateLimited",
    "RetryPolicy",
    "ServerError",
    "ServiceUnavailable",
]
