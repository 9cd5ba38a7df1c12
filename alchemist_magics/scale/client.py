"""Get a ``dask.distributed`` client from what the user passed (a client, an address, or nothing)."""
from __future__ import annotations


def resolve_client(client=None):
    """A ``distributed.Client``: ``client`` itself, a new client connected to ``client`` when it is an
    address (``"tcp://10.0.0.5:8786"``), or the client already active in this process when None.

    Raises a one-line ``RuntimeError`` naming the fix when dask is not installed or no client exists.
    """
    try:
        import distributed
    except ImportError:
        raise RuntimeError("the dask engine needs dask.distributed: pip install 'alchemist_magics[dask]'") from None
    if isinstance(client, distributed.Client):
        return client
    if isinstance(client, str):
        return distributed.Client(client)
    if client is None:
        try:
            return distributed.get_client()
        except ValueError:
            raise RuntimeError(
                "no dask client: pass client=distributed.Client(...) (or a scheduler address), "
                "or create one in this process first"
            ) from None
    raise TypeError(f"client must be a distributed.Client, a scheduler address or None, got {type(client).__name__}")
