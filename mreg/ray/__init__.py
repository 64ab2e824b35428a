"""Ray: convert a dataset on a Ray cluster (``mreg add PATH --engine ray``, or from object
storage: ``mreg add s3://BUCKET/PREFIX --engine ray``) and read one exact version as a
``ray.data.Dataset`` (``mreg.ray.dataset``).

    import mreg.ray
    train = mreg.ray.dataset("flowers", rev="v1.2.0")     # {"image": HxWxC uint8, "label": int}

Ray is optional (``pip install "mreg[ray]"``); the names load on first use (PEP 562), so
``import mreg.ray`` does not import Ray.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mreg.lazy import lazy_attributes

if TYPE_CHECKING:
    from mreg.ray.ingest import RayEngine
    from mreg.ray.read import dataset

__getattr__ = lazy_attributes(
    __name__, {"RayEngine": "mreg.ray.ingest", "dataset": "mreg.ray.read"}
)

__all__ = ["RayEngine", "dataset"]
