"""Cards API HTTP gateway: authenticate, pick the tenant, call one SQL function, map its answer."""

__version__ = "0.1.0"
