"""One signature per kernel op: the launcher's, from which the custom op and the public function are made.

A kernel op is written once, as its launcher::

    def _check_bias_act(args: dict) -> None: ...          # host validation, may normalise args in place

    @kernel_op(check=_check_bias_act)
    def bias_act(x: torch.Tensor, bias: torch.Tensor | None, activation: str = "gelu", *, wrap: bool = False):
        '''Docstring of the public function.'''
        ...  # allocate the output, _compat.launch(kernel, grid, ..., wrap=wrap, X=x, ...)

and ``kernel_op`` makes, from that one signature (the launcher's parameters before ``*``):

- the custom op ``torch.ops.fastbert.<name>`` (``torch.library.triton_op``: its schema is inferred from
  the annotations; its fake/meta implementation is traced through ``wrap_triton``, so torch.compile
  sees the launch), calling the launcher with ``wrap=True``;
- the public function ``<name>``: the launcher's parameters plus the keyword-only host options of
  ``check`` (e.g. ``validate=True``), which validates on the host, then calls the launcher directly
  (``wrap=False``: the custom-op dispatch costs tens of microseconds a call) or, while torch.compile
  traces, the custom op. It is generated from the signature (as ``dataclasses`` generates ``__init__``)
  rather than binding ``*args`` with ``inspect.Signature.bind``, which would cost ~10 us on every launch.
  The kernels have no autograd formula: called eagerly with grad enabled on an input that requires grad,
  the public function refuses (RuntimeError) rather than return an output with no ``grad_fn``.

The public function carries the launcher's docstring, name and full ``__signature__``; the launcher and
the op stay reachable as ``<name>.launcher`` and ``<name>.op``.
"""

from __future__ import annotations

import inspect
import numbers
from collections.abc import Callable

import numpy
import torch
from torch.library import triton_op

NAMESPACE = "fastbert"

#: The custom op's implementation: the launcher, launching through ``wrap_triton`` (see ``kernel_op``).
_IMPL_SOURCE = "def impl(*args, **kwargs):\n    return launcher(*args, **kwargs, wrap=True)\n"


def _op_signature(launcher: Callable) -> inspect.Signature:
    """The launcher's signature without its keyword-only ``wrap``, annotations resolved (the op schema)."""
    sig = inspect.signature(launcher, eval_str=True)
    params = [p for p in sig.parameters.values() if p.name != "wrap"]
    if any(p.kind is not inspect.Parameter.POSITIONAL_OR_KEYWORD for p in params):
        raise TypeError(
            f"{launcher.__name__}: op parameters must be positional-or-keyword; only 'wrap' after '*'"
        )
    if "wrap" not in sig.parameters:
        raise TypeError(f"{launcher.__name__}: the launcher needs a keyword-only 'wrap' parameter")
    return sig.replace(parameters=params)


def check_float(name: str, value, *, minimum: float | None = None) -> float:
    """``value`` as a python float: a finite real number (python or numpy, not a bool) at least ``minimum``;
    ValueError naming ``name`` otherwise."""
    # finite as x - x == 0 (inf and NaN give NaN): math.isfinite breaks the graph on a value torch.compile
    # traces as a symbol
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and value - value == 0
    if not ok or (minimum is not None and value < minimum):
        kind = "a finite float" if minimum is None else f"a finite float >= {minimum:g}"
        raise ValueError(f"{name} must be {kind}, got {value!r}")
    return value if isinstance(value, float) else float(value)


def check_flag(name: str, value) -> bool:
    """``value`` as a python bool: a bool (python or numpy); ValueError naming ``name`` otherwise (``bool()``
    of the string "false" is True, and of a tensor a device->host read or an error)."""
    if not isinstance(value, (bool, numpy.bool_)):
        raise ValueError(f"{name} must be a bool, got {value!r}")
    return bool(value)


def check_count(name: str, value, what: str = "") -> int:
    """``value`` as a python int: a non-negative integer (python or numpy, not a bool); ValueError naming
    ``name`` (and ``what`` it means) otherwise."""
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{name} must be a non-negative int{what}, got {value!r}")
    # as given when an int: a numpy integer becomes one, a traced int stays as torch.compile has it
    return value if isinstance(value, int) else int(value)


def _refuse_grad(name: str, args: dict) -> None:
    needing = [n for n, v in args.items() if getattr(v, "requires_grad", False)]
    raise RuntimeError(
        f"fastbert.kernels.{name} is forward-only (no autograd formula): {', '.join(needing)} "
        f"require{'s' if len(needing) == 1 else ''} grad, and its output would carry none; call it under "
        "torch.no_grad(), or use its torch reference (fastbert.core.ops) where gradients are needed"
    )


def _refuse_layout(name: str, args: dict) -> None:
    """ValueError naming the first sparse or nested tensor among ``args``: the kernels read dense (strided)
    memory; torch's own error came from deep inside (an id check's ``min``, the launch's ``data_ptr``)."""
    for n, v in args.items():
        if isinstance(v, torch.Tensor) and (v.is_nested or v.layout is not torch.strided):
            kind = "nested" if v.is_nested else str(v.layout)
            raise ValueError(
                f"fastbert.kernels.{name}: {n} is a {kind} tensor; the kernels take dense (strided) tensors "
                "(.to_dense(); a nested tensor padded with torch.nested.to_padded_tensor)"
            )


def kernel_op(check: Callable[..., None]) -> Callable[[Callable], Callable]:
    """Decorator: launcher -> public function, registering ``fastbert::<launcher name>`` on the way.

    ``check(args, **host_options)``: validates ``args`` (the op's arguments by name, a dict it may
    update in place, e.g. a bool mask viewed as uint8) and raises ValueError naming the problem; its
    keyword-only parameters become the public function's keyword-only host options.
    """

    def decorate(launcher: Callable) -> Callable:
        name = launcher.__name__
        sig = _op_signature(launcher)
        names = list(sig.parameters)

        # Generated without a source file, like the public function below. triton_op scans the source of
        # the function it registers for the kernels it launches (a cache key of AOTAutograd); the scan
        # imports torch._inductor (~3 s on a 2-core machine, at every `import fastbert.kernels`) and cannot
        # follow our launches through ``_compat.launch`` anyway: it found none. Without a source it is
        # skipped, with the same (empty) result. So, as before, that cache key does not cover the kernels'
        # source: after editing a kernel, clear torch.compile's caches (TORCHINDUCTOR_CACHE_DIR) before
        # compiling the model again.
        scope = {"launcher": launcher}
        exec(compile(_IMPL_SOURCE, f"<fastbert kernel op impl {name}>", "exec"), scope)  # noqa: S102
        impl = scope["impl"]
        impl.__signature__ = sig  # type: ignore[attr-defined]
        impl.__name__ = impl.__qualname__ = f"{name}_op"
        impl.__doc__ = f"Custom op behind ``{name}`` (what torch.compile traces); inputs already validated."
        op = triton_op(f"{NAMESPACE}::{name}", mutates_args=())(impl)

        host = [
            p
            for p in inspect.signature(check).parameters.values()
            if p.kind is inspect.Parameter.KEYWORD_ONLY
        ]
        public_sig = sig.replace(parameters=[*sig.parameters.values(), *host])
        env = {"check": check, "launcher": launcher, "op": op, "compiler": torch.compiler}
        env.update(
            {
                f"_default_{p.name}": p.default
                for p in public_sig.parameters.values()
                if p.default is not p.empty
            }
        )

        def param(p: inspect.Parameter) -> str:
            return p.name if p.default is p.empty else f"{p.name}=_default_{p.name}"

        host_call = "".join(f", {p.name}={p.name}" for p in host)
        tensors = [n for n in names if "Tensor" in str(sig.parameters[n].annotation)]
        env["grad_enabled"], env["refuse_grad"] = torch.is_grad_enabled, _refuse_grad
        env["refuse_layout"], env["strided"] = _refuse_layout, torch.strided
        needs_grad = " or ".join(f"getattr({n}, 'requires_grad', False)" for n in tensors) or "False"
        not_dense = (
            " or ".join(
                f"getattr({n}, 'layout', strided) is not strided or getattr({n}, 'is_nested', False)"
                for n in tensors
            )
            or "False"
        )
        source = (
            f"def {name}({', '.join(param(p) for p in sig.parameters.values())}"
            f"{', *, ' + ', '.join(param(p) for p in host) if host else ''}):\n"
            f"    args = {{{', '.join(f'{n!r}: {n}' for n in names)}}}\n"
            f"    if {not_dense}:\n"
            f"        refuse_layout({name!r}, args)\n"
            f"    check(args{host_call})\n"
            f"    if compiler.is_compiling():\n"
            f"        return op(**args)\n"
            f"    if grad_enabled() and ({needs_grad}):\n"
            f"        refuse_grad({name!r}, args)\n"
            f"    return launcher(**args, wrap=False)\n"
        )
        exec(compile(source, f"<fastbert kernel op {name}>", "exec"), env)  # noqa: S102 - from a signature
        public = env[name]
        public.__signature__ = public_sig
        public.__doc__ = launcher.__doc__
        public.__module__ = launcher.__module__
        public.__qualname__ = launcher.__qualname__
        public.launcher = launcher
        public.op = op
        return public

    return decorate
