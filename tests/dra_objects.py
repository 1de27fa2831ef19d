"""ResourceSlices and DeviceClasses as the NVIDIA DRA driver publishes them (k8s-dra-driver-gpu:
cmd/gpu-kubelet-plugin/deviceinfo.go attribute names; deployments/helm/.../deviceclass-gpu.yaml)."""

from __future__ import annotations

from typing import Any

DRIVER = "gpu.nvidia.com"


def gpu_slice(
    node: str,
    product: str = "NVIDIA H100 80GB HBM3",
    gpus: int = 8,
    memory: str = "81559Mi",
    architecture: str = "Hopper",
    name: str | None = None,
) -> dict[str, Any]:
    devices = [
        {
            "name": f"gpu-{i}",
            "attributes": {
                "type": {"string": "gpu"},
                "productName": {"string": product},
                "architecture": {"string": architecture},
                "brand": {"string": "Nvidia"},
                "uuid": {"string": f"GPU-{node}-{i:04d}"},
                "cudaComputeCapability": {"version": "9.0.0"},
                "resource.kubernetes.io/pcieRoot": {"string": f"pci0000:{i // 4:02x}"},
            },
            "capacity": {"memory": {"value": memory}},
        }
        for i in range(gpus)
    ]
    return {
        "apiVersion": "resource.k8s.io/v1",
        "kind": "ResourceSlice",
        "metadata": {"name": name or f"{node}-{DRIVER}"},
        "spec": {
            "driver": DRIVER,
            "nodeName": node,
            "pool": {"name": node, "generation": 1, "resourceSliceCount": 1},
            "devices": devices,
        },
    }


def gpu_device_class(extended_resource: str | None = None, name: str = DRIVER) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "selectors": [
            {
                "cel": {
                    "expression": "device.driver == 'gpu.nvidia.com' && "
                    "device.attributes['gpu.nvidia.com'].type == 'gpu'"
                }
            }
        ]
    }
    if extended_resource:
        spec["extendedResourceName"] = extended_resource
    return {
        "apiVersion": "resource.k8s.io/v1",
        "kind": "DeviceClass",
        "metadata": {"name": name},
        "spec": spec,
    }
