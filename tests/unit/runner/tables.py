"""Process tables for the manager's tests, written as the dicts they read best as."""

from __future__ import annotations

from typing import Any

from wsgistack.contracts import ProcessTable


def as_table(data: dict[str, Any]) -> ProcessTable:
    """A ProcessTable from a dict in processes.json's shape (``ready`` may be given as
    ``{"tcp": "host:port"}``, ``{"unix": path}``, ``{"file": path}``; ``drain`` as
    ``{"file": path, "delay": s}``)."""
    data = {"version": ProcessTable.VERSION, "runtime_dir": "", **data}
    drain = data.pop("drain", None)
    if drain:
        data["drain_file"], data["drain_delay"] = drain["file"], drain["delay"]
    processes = []
    for spec in data["processes"]:
        spec = dict(spec)
        ready = dict(spec.get("ready") or {})
        if "tcp" in ready:
            host, _, port = ready.pop("tcp").rpartition(":")
            ready.update(tcp_host=host.strip("[]"), tcp_port=int(port))
        spec["ready"] = ready
        processes.append(spec)
    data["processes"] = processes
    return ProcessTable.from_json(data)
