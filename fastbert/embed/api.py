"""``embed()``: the pipeline of a job, stage by stage."""

from __future__ import annotations

import os
import secrets
import warnings
from collections.abc import Sequence
from typing import Any

from .devices import check_devices, default_max_batch_tokens, device_list
from .encoder import Encoder
from .inputs import input_formats
from .job import DEFAULT_SHARD_ROWS, DEFAULT_WINDOW, make_job
from .local import run_local
from .manifest import new_manifest, write_manifest
from .plan import plan_shards
from .ray_engine import require_ray, run_ray
from .resume import OutputFolder, check_same_version, plan_inputs
from .writer import null_vectors_refusal

PYARROW_MISSING = (
    "fastbert embed writes Parquet through pyarrow: pip install pyarrow (the [embed] extra: "
    "pip install '.[embed]' in a checkout of fastbert; fastbert-triton is not on PyPI)"
)


def require_pyarrow() -> None:
    """An ImportError saying how to install pyarrow when it is missing."""
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        raise ImportError(PYARROW_MISSING) from None


def embed(
    inputs: Sequence[str | os.PathLike] | str | os.PathLike,
    output: str | os.PathLike,
    *,
    model: str | None = None,
    task: str = "sentence-embedding",
    column: str = "text",
    id_column: str | None = None,
    input_format: str | None = None,
    dtype: str | None = None,
    output_dtype: str = "float32",
    device: Any = None,
    devices: Any = None,
    max_length: int | None = None,
    pooling: Sequence[str] | str | None = None,
    normalize: bool | None = None,
    function_to_apply: str | None = None,
    max_batch_tokens: int | None = None,
    window: int = DEFAULT_WINDOW,
    shard_rows: int = DEFAULT_SHARD_ROWS,
    on_error: str = "fail",
    overwrite: bool = False,
    progress: bool | None = None,
    engine: str = "local",
    ray_address: str | None = None,
    ray_actors: int | None = None,
    revision: str | None = None,
    attn_implementation: str | None = None,
    quantization: str | None = None,
) -> dict[str, Any]:
    """Embed a corpus into Parquet shards under ``output`` and return its manifest (a dict).

    ``inputs``: files or globs (.txt one text a line, .jsonl, .csv, .parquet); ``column`` names the text
    field, ``id_column`` the id field (ids are then strings; without it, global row numbers, int64).
    ``task``: ``sentence-embedding`` (the model folder's pooling; ``pooling``/``normalize`` override),
    ``feature-extraction`` (the last hidden state pooled by ``pooling``: mean, cls or max) or
    ``text-classification`` (the score of each label, in label-id order). ``devices``: one worker
    process per device over disjoint shards. ``engine="ray"``: the same plan as a Ray Data pipeline.
    ``quantization``: "int8" or "fp8", the model quantized at load in every worker (calibrated on the
    built-in set, :func:`fastbert.quantize`); part of the job, so a resume must ask the same.
    A finished output is returned as is; an interrupted one is resumed (``engine="ray"``: a finished output
    is refused unless ``overwrite``, and an interrupted one starts over: Ray runs are not resumed);
    another job's is refused unless ``overwrite``; a folder another run is writing is refused (:class:`~fastbert.embed.lock.OutputInUse`).
    Ids that repeat inside a shard are counted in the manifest (``duplicate_ids``) and warned of
    (:class:`DuplicateIdWarning`).
    """
    require_pyarrow()
    output = os.fspath(output)  # a pathlib.Path, as inputs may be (a TypeError deep in the URI check)
    if not isinstance(output, str) or not output:  # "" was the current folder, named as ""
        raise ValueError(f"output (--output) must name a folder, got {output!r}")
    refusal = null_vectors_refusal(on_error)
    if refusal is not None:
        raise ValueError(refusal)
    for name, value, optional in (
        ("normalize", normalize, True),
        ("progress", progress, True),
        ("overwrite", overwrite, False),
    ):
        if not isinstance(value, bool) and not (optional and value is None):  # a string was taken by truth
            raise ValueError(f"{name} must be True or False{' or None' if optional else ''}, got {value!r}")
    if engine not in ("local", "ray"):
        raise ValueError(f"engine must be 'local' or 'ray', got {engine!r}")
    if ray_actors is not None and (
        not isinstance(ray_actors, int) or isinstance(ray_actors, bool) or ray_actors < 1
    ):
        raise ValueError(f"ray_actors (--ray-actors) must be a positive integer, got {ray_actors!r}")
    if ray_actors is not None and engine != "ray":  # the local engine has no actors: it was ignored
        raise ValueError("ray_actors is an option of the Ray engine (engine='ray'), not of the local engine")
    if ray_address is not None and engine != "ray":  # the local engine joins no cluster: it was ignored
        raise ValueError("ray_address is an option of the Ray engine (engine='ray'), not of the local engine")
    if device is not None and devices is not None:  # devices won, and device was ignored
        raise ValueError(f"device and devices: pass one, not both (got {device!r} and {devices!r})")
    if engine == "ray":
        require_ray()
    targets = device_list(device, devices)
    if engine == "ray" and len(targets) > 1:  # run_ray reads the first only: the others were ignored
        raise ValueError(
            f"devices (--devices) {devices!r}: several devices are the local engine's workers; the Ray engine "
            "runs one actor per GPU of the cluster (CPU actors without GPUs, or with device 'cpu'): pass "
            "ray_actors (--ray-actors) for how many"
        )
    job = make_job(
        task=task,
        model=model,
        revision=revision,
        dtype=dtype,
        output_dtype=output_dtype,
        pooling=pooling,
        normalize=normalize,
        max_length=max_length,
        function_to_apply=function_to_apply,
        column=column,
        id_column=id_column,
        on_error=on_error,
        shard_rows=shard_rows,
        window=window,
        max_batch_tokens=default_max_batch_tokens(targets, engine)
        if max_batch_tokens is None
        else max_batch_tokens,
        attn_implementation=attn_implementation,
        quantization=quantization,
    )
    check_devices(targets)
    paths, formats = input_formats(inputs, input_format, id_column, output)
    # read only but for its lock, held from here to the end: another run writing the folder is refused
    folder = OutputFolder.inspect(output, engine, overwrite)
    try:
        manifest = _run(job, folder, paths, formats, engine, targets, progress, ray_address, ray_actors)
    finally:
        folder.release()
    if manifest.get("duplicate_ids"):
        warnings.warn(DuplicateIdWarning(duplicate_ids_message(manifest)), stacklevel=2)
    return manifest


class DuplicateIdWarning(UserWarning):
    """Ids of the id column repeat (found inside a shard): joining or sorting by id is then ambiguous."""


def duplicate_ids_message(manifest: dict[str, Any]) -> str:
    """What :class:`DuplicateIdWarning` says about ``manifest``."""
    first = manifest.get("first_duplicate_id")
    if manifest.get("first_duplicate_at"):  # older manifests: where and id in first_duplicate_id
        first = f"{manifest['first_duplicate_at']} (id {first!r})"
    return (
        f"{manifest['duplicate_ids']} row(s) have an id an earlier row of their shard has (the first: "
        f"{first}): ids that repeat make a join or sort by id ambiguous "
        "(repeats across shards are not looked for)"
    )


def _probe_job(job, engine, target):
    """The job the driver's probe of a Ray run loads on the CPU: without the quantization when the actors
    run on a GPU (fp8, or int8 from float16 weights, run there and not on the CPU); quantizing changes
    neither the model, its head, its pooling nor the vectors' dimension, which is what the probe checks."""
    if engine != "ray" or job.quantization is None:
        return job
    import dataclasses

    import torch

    from fastbert.devices import parse_device

    gpu = torch.cuda.is_available() if target is None else parse_device(target).type != "cpu"
    return dataclasses.replace(job, quantization=None) if gpu else job


def _run(job, folder, paths, formats, engine, targets, progress, ray_address, ray_actors) -> dict[str, Any]:
    """The job in ``folder`` (inspected and locked): planned, resumed or started, run, its manifest written."""
    output = folder.output
    files = plan_inputs(paths, formats, job, folder.previous, output)  # a resume checked against the manifest
    digits = folder.shard_digits(files, job.shard_rows)
    shards = plan_shards(files, job.shard_rows, digits)
    todo = folder.todo(shards)
    if folder.previous is not None and (todo or folder.previous.get("status") != "complete"):
        check_same_version(folder.previous, output)  # a resume: not beside another version's shards
    if folder.finished(todo, job):
        return folder.previous
    # the model loads before anything is written: a bad model, head, pooling or device stops here
    encoder = Encoder(_probe_job(job, engine, targets[0]), "cpu" if engine == "ray" else targets[0])
    description = {"description": encoder.describe(), "dimension": encoder.dimension}

    prefix = f"part-ray-{secrets.token_hex(4)}" if engine == "ray" else None
    manifest = new_manifest(job, files, engine, ray_file_prefix=prefix, shard_digits=digits)
    folder.start(manifest)
    if engine == "ray" or len(targets) > 1:
        encoder = None  # Ray's actors and the --devices workers load their own
    if engine == "ray":
        summary = run_ray(job, files, shards, output, ray_address, ray_actors, targets[0], progress, prefix)
    else:
        lock_fd = folder.lock.fd if folder.lock is not None else None
        summary = run_local(job, files, shards, todo, output, targets, progress, encoder, lock_fd)
    manifest.update(description | summary | {"status": "complete"})
    write_manifest(folder.manifest_path, manifest)
    return manifest
