"""Model clients for the evaluation engine (no Django: plain values in, plain dataclasses out)."""

from evalworkers.backends.base import Backend, GenerationRequest, GenerationResult
from evalworkers.backends.concurrency import generate_many
from evalworkers.backends.endpoint import EndpointBackend, EndpointConfig
from evalworkers.backends.probe import ProbeResult, probe
from evalworkers.backends.retry import CircuitBreaker, CircuitOpenError, RetryPolicy

__all__ = [
    "Backend",
    "CircuitBreaker",
    "CircuitOpenError",
    "EndpointBackend",
    "EndpointConfig",
    "GenerationRequest",
    "GenerationResult",
    "ProbeResult",
    "RetryPolicy",
    "generate_many",
    "probe",
]
