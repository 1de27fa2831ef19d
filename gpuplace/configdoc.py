"""Render the configuration reference (docs/configuration.md) from the config model itself, so the
documentation cannot drift from what `load_config` accepts. `python -m gpuplace.configdoc > docs/...`."""

from __future__ import annotations

import json
import sys
from typing import Any

from pydantic import BaseModel

from common.config import ENV_PREFIX, Config

HEADER = """# Configuration reference

Generated from `common/config.py` by `python -m gpuplace.configdoc > docs/configuration.md` (a test fails
when this file is stale). One YAML file (`--config FILE` or `$GPUPLACE_CONFIG`; in-cluster the
`gpuplace-config` ConfigMap), validated at start: an unknown key or a bad value stops the process with a
one-line error naming the field. Scalar fields can be overridden by environment variables named
`{prefix}<SECTION>__<FIELD>`, e.g. `{prefix}CHECKS__LOAD_GIB_PER_S=2`.
"""


def render() -> str:
    lines = [HEADER.format(prefix=ENV_PREFIX)]
    for name, field in Config.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            lines.append(f"\n## `{name}`\n")
            if annotation.__doc__ and annotation.__doc__ != BaseModel.__doc__:
                lines.append(annotation.__doc__.strip() + "\n")
            lines.append("| key | type | default | meaning |\n|---|---|---|---|")
            for key, sub in annotation.model_fields.items():
                lines.append(
                    f"| `{name}.{key}` | {_type(sub.annotation)} | {_default(sub)} | "
                    f"{(sub.description or '').replace('|', '/')} |"
                )
        else:
            lines.append(f"\n## `{name}`\n\n{field.description or ''} Default: {_default(field)}.")
    return "\n".join(lines) + "\n"


def _type(annotation: Any) -> str:
    text = getattr(annotation, "__name__", None) or str(annotation)
    return "`" + text.replace("typing.", "") + "`"


def _default(field: Any) -> str:
    value = field.default_factory() if field.default_factory is not None else field.default
    return "`" + json.dumps(value, default=str) + "`"


if __name__ == "__main__":
    sys.stdout.write(render())
