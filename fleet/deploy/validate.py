"""Every rendered object against its published schema, strictly (an unknown field is an error, as
`kubectl apply --validate=strict` makes it): core kinds against the Kubernetes OpenAPI schemas
(kubernetes-validate's bundled copies), FlinkDeployments against the Flink Kubernetes operator's
CRD as published (operator 1.16; the unchanged copy in deploy/flink-k8s/crds/, see its README)."""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml

from fleet.deploy.overlays import DEPLOY_DIR

KUBERNETES_VERSION = "1.33.0"
CRD_DIR = DEPLOY_DIR / "crds"


def object_name(obj: dict[str, Any]) -> str:
    return f"{obj.get('kind')}/{(obj.get('metadata') or {}).get('name')}"


@cache
def crd_schemas(crd_dir: Path = CRD_DIR) -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) → the served version's openAPIV3Schema, for every CRD in `crd_dir`."""
    schemas = {}
    for path in sorted(crd_dir.glob("*.yml")) + sorted(crd_dir.glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            if version.get("served"):
                api_version = f"{group}/{version['name']}"
                schema = _strict(version["schema"]["openAPIV3Schema"])
                # The API server checks these itself for every custom resource; the CRD lists only spec/status.
                schema["properties"] = {**schema["properties"], "apiVersion": {"const": api_version}, "kind": {"const": kind},
                                        "metadata": OBJECT_META}
                schema["required"] = sorted({*schema.get("required", []), "apiVersion", "kind", "metadata"})
                schemas[(api_version, kind)] = schema
    return schemas


# A custom resource's metadata as the API server takes it: a DNS-1035 label for a name (the operator
# names Services and Deployments after it), string maps for labels and annotations.
_STRINGS = {"type": "object", "additionalProperties": {"type": "string"}}
OBJECT_META = {
    "type": "object",
    "properties": {"name": {"type": "string", "pattern": "^[a-z]([-a-z0-9]*[a-z0-9])?$", "maxLength": 63},
                   "namespace": {"type": "string"}, "labels": _STRINGS, "annotations": _STRINGS},
    "required": ["name"],
    "additionalProperties": False,
}


def _strict(schema: Any) -> Any:
    """A structural schema prunes unknown fields silently; refuse them instead, except where the
    schema says it keeps them (x-kubernetes-preserve-unknown-fields) or is a map (additionalProperties)."""
    if isinstance(schema, list):
        return [_strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _strict(v) for k, v in schema.items()}
    if "properties" in out and "additionalProperties" not in out and not out.get("x-kubernetes-preserve-unknown-fields"):
        out["additionalProperties"] = False
    # int-or-string fields (resource quantities, ports) carry no type in the schema: anyOf does it.
    if out.get("x-kubernetes-int-or-string"):
        out.setdefault("anyOf", [{"type": "integer"}, {"type": "string"}])
    return out


def problems(objects: Iterable[dict[str, Any]], *, kubernetes_version: str = KUBERNETES_VERSION, crd_dir: Path = CRD_DIR) -> list[str]:
    """What is wrong with each object, one line per error; empty when every object validates."""
    found = []
    custom = crd_schemas(crd_dir)
    for obj in objects:
        key = (obj.get("apiVersion", ""), obj.get("kind", ""))
        if key in custom:
            validator = jsonschema.Draft7Validator(custom[key])
            found += [f"{object_name(obj)}: {'.'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}"
                      for e in sorted(validator.iter_errors(obj), key=lambda e: list(map(str, e.absolute_path)))]
            continue
        try:
            kubernetes_validate.validate(obj, kubernetes_version, strict=True)
        except kubernetes_validate.SchemaNotFoundError:
            found.append(f"{object_name(obj)}: no schema for {key[0]} {key[1]} in Kubernetes {kubernetes_version} or {crd_dir}")
        except kubernetes_validate.ValidationError as error:
            found.append(f"{object_name(obj)}: {'.'.join(map(str, error.path)) or '(root)'}: {error.message}")
    return found
