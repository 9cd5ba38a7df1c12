"""Run the engine on a Dask cluster (optional extra: ``pip install alchemist_magics[dask]``).

``apply_programs_dask`` is the distributed twin of ``programs.apply_programs``: same sandbox on
every worker, same :class:`~alchemist_magics.programs.ApplyResult`, same output cache. Dask is
imported only when one of these functions runs, so the rest of the package never needs it.
``scale.images.embed_images_dask`` (import it from there: it needs the images extra) maps CLIP
embedding over the workers into the same embedding cache.
"""
from .apply import DaskApplyResult, PartitionRun, apply_programs_dask
from .client import resolve_client
from .partitions import Partition, split_rows

__all__ = ["DaskApplyResult", "Partition", "PartitionRun", "apply_programs_dask", "resolve_client", "split_rows"]
