"""Security properties of the code base and the running app.

* Nothing unpickles: weights and caches are safetensors; a ``torch.load`` must say ``weights_only=True``; no
  ``pickle``/``dill``/``joblib``/``np.load(allow_pickle=True)``/``pd.read_pickle``. One exception: PixNerd's
  Lightning checkpoint reader (``RESTRICTED_UNPICKLERS``) imports ``pickle`` only to subclass its ``Unpickler`` with a
  ``find_class`` that resolves an allow-list and never imports (tests/test_pixnerd_checkpoint.py: a pickle naming code
  is refused and none of it runs).
* Uploads are capped (.streamlit/config.toml) and read from memory: pages never open files, so no user-controlled path
  reaches the filesystem.
* The Hugging Face token never reaches the user: not in any rendered element, not in logs, not in any cached file.
"""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CODE_DIRS = ("lib", "ui", "app_pages", "scripts", "bench")
APP_SCRIPTS = sorted((ROOT / "app_pages").glob("*.py")) + [ROOT / "Home.py"]
SECRET = "hf_SECRET_TEST_TOKEN"
UNPICKLING_MODULES = {"pickle", "cPickle", "_pickle", "dill", "joblib", "shelve", "marshal", "cloudpickle"}
RESTRICTED_UNPICKLERS = {"lib/backends/pixnerd/checkpoint.py"}  # may import pickle, for a restricted Unpickler subclass only


def _sources() -> list[Path]:
    files = [p for d in CODE_DIRS for p in sorted((ROOT / d).rglob("*.py"))]
    return files + [p for p in [ROOT / "Home.py"] if p.exists()]


def _dotted(node: ast.AST) -> str:
    """``torch.load`` for ``torch.load(...)``'s func, ``np.load`` for ``np.load``, ``open`` for ``open``."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return "?"


def _kw_true(call: ast.Call, name: str) -> bool:
    return any(k.arg == name and isinstance(k.value, ast.Constant) and k.value.value is True for k in call.keywords)


def unsafe_deserialisation(source: str) -> list[str]:
    """Every place in ``source`` that could unpickle data, as readable findings (empty = safe)."""
    findings = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            findings += [f"import {a.name}" for a in node.names if a.name.split(".")[0] in UNPICKLING_MODULES]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in UNPICKLING_MODULES:
            findings.append(f"from {node.module} import …")
        elif isinstance(node, ast.Call):
            name = _dotted(node.func)
            if name.endswith("torch.load") and not _kw_true(node, "weights_only"):
                findings.append(f"line {node.lineno}: {name}(…) without weights_only=True")
            if name.endswith(".load") and _kw_true(node, "allow_pickle"):
                findings.append(f"line {node.lineno}: {name}(…, allow_pickle=True)")
            if name.endswith("read_pickle"):
                findings.append(f"line {node.lineno}: {name}(…)")
    return findings


def restricted_unpickler_only(source: str) -> bool:
    """Whether ``source`` uses ``pickle`` only as the base of Unpickler subclasses that override ``find_class``."""
    tree = ast.parse(source)
    uses = [n for n in ast.walk(tree) if isinstance(n, ast.Attribute) and _dotted(n.value) == "pickle"]
    classes = [c for c in ast.walk(tree) if isinstance(c, ast.ClassDef)
               and any(_dotted(b) == "pickle.Unpickler" for b in c.bases)]
    return (bool(classes) and len(uses) == len(classes) and all(_dotted(u) == "pickle.Unpickler" for u in uses)
            and all(any(isinstance(f, ast.FunctionDef) and f.name == "find_class" for f in c.body) for c in classes))


def test_the_scanner_catches_unpickling():
    assert unsafe_deserialisation("import pickle") == ["import pickle"]
    assert unsafe_deserialisation("from joblib import load") == ["from joblib import …"]
    assert unsafe_deserialisation("import torch\nx = torch.load('m.pt')") == [
        "line 2: torch.load(…) without weights_only=True"]
    assert unsafe_deserialisation("torch.load(f, weights_only=False)")
    assert unsafe_deserialisation("np.load('a.npy', allow_pickle=True)")
    assert unsafe_deserialisation("pd.read_pickle('x')")
    assert unsafe_deserialisation("torch.load(f, map_location='cpu', weights_only=True)") == []
    assert unsafe_deserialisation("from safetensors.torch import load_file\nload_file('m.safetensors')") == []


def test_no_code_unpickles_anything():
    sources = _sources()
    assert len(sources) > 10, "the scan found too few files to be meaningful"
    findings = {str(p.relative_to(ROOT)): f for p in sources if (f := unsafe_deserialisation(p.read_text()))}
    for path in RESTRICTED_UNPICKLERS:
        if findings.get(path) == ["import pickle"] and restricted_unpickler_only((ROOT / path).read_text()):
            del findings[path]
    assert findings == {}


def test_the_restricted_unpickler_check_works():
    restricted = ("import pickle\nclass R(pickle.Unpickler):\n    def find_class(self, module, name):\n"
                  "        raise KeyError(name)\n")
    assert restricted_unpickler_only(restricted)
    assert not restricted_unpickler_only(restricted + "x = pickle.loads(b'')\n")
    assert not restricted_unpickler_only("import pickle\nclass R(pickle.Unpickler):\n    pass\n")
    assert not restricted_unpickler_only("import pickle\nx = pickle.Unpickler(f).load()\n")


def test_shipped_and_cached_weights_are_safetensors_only():
    """No pickle-based weight files (.pt/.pth/.ckpt/.bin/.pkl) anywhere in the repository's data."""
    pickled = [p for ext in ("pt", "pth", "ckpt", "bin", "pkl", "pickle", "joblib")
               for p in (ROOT / "data").rglob(f"*.{ext}")]
    assert pickled == []


def test_upload_cap_and_no_secrets_in_config():
    text = (ROOT / ".streamlit" / "config.toml").read_text()
    config = tomllib.loads(text)
    assert config["server"]["maxUploadSize"] == 20  # MB
    assert config["browser"]["gatherUsageStats"] is False

    def leaves(table, prefix=""):
        for k, v in table.items():
            yield from leaves(v, f"{prefix}{k}.") if isinstance(v, dict) else [(f"{prefix}{k}", v)]

    for key, value in leaves(config):
        assert not any(w in key.lower() for w in ("token", "secret", "password", "key")), key
        assert not (isinstance(value, str) and value.startswith("hf_")), key
    assert ".streamlit/secrets.toml" in (ROOT / ".gitignore").read_text().splitlines()


def file_access(source: str) -> list[str]:
    """Calls in a page script that open or touch files by path (a page must read uploads from memory only)."""
    findings = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        name = _dotted(node.func)
        last = name.rsplit(".", 1)[-1]
        if name in ("open", "io.open", "os.open", "codecs.open") or last in (
            "read_bytes", "read_text", "write_bytes", "write_text", "unlink", "rmtree", "remove", "rename",
            "mkdir", "touch", "imread", "imwrite",
        ):
            findings.append(f"line {node.lineno}: {name}(…)")
        elif last == "Path" and any(not _constant_path_arg(a) for a in node.args):
            findings.append(f"line {node.lineno}: Path() of a non-constant")
    return findings


def _constant_path_arg(arg: ast.AST) -> bool:
    return isinstance(arg, ast.Constant) or (isinstance(arg, ast.Name) and arg.id == "__file__")


def test_the_file_access_scanner_works():
    assert file_access("open(name)") == ["line 1: open(…)"]
    assert sorted(file_access("from pathlib import Path\nPath(upload.name).write_bytes(b)")) == [
        "line 2: ?.write_bytes(…)", "line 2: Path() of a non-constant"]
    assert file_access("ROOT = Path(__file__).resolve().parent") == []
    assert file_access("Image.open(io.BytesIO(file.getvalue()))") == []


def test_pages_never_touch_files_by_path():
    assert APP_SCRIPTS[-1].exists(), "Home.py is missing"
    findings = {p.name: f for p in APP_SCRIPTS + sorted((ROOT / "ui").rglob("*.py")) if (f := file_access(p.read_text()))}
    assert findings == {}


# --- the token ---------------------------------------------------------------------------------------------------------

def _rendered_text(at) -> str:
    """Every element the app sent to the browser (main, sidebar, …), as the text of its protobuf message."""
    parts = []

    def walk(node):
        proto = getattr(node, "proto", None)
        if proto is not None:
            parts.append(str(proto))
        for child in getattr(node, "children", {}).values():
            walk(child)

    walk(at._tree)
    return "\n".join(parts)


def test_the_walker_sees_the_sidebar_and_widgets():
    from streamlit.testing.v1 import AppTest

    def leaky():
        import streamlit as st

        st.sidebar.expander("details").caption("token: hf_SECRET_TEST_TOKEN")
        st.text_input("Token", value="hf_SECRET_TEST_TOKEN")

    at = AppTest.from_function(leaky).run()
    assert _rendered_text(at).count(SECRET) == 2


def _files_containing(folder: Path, needle: bytes) -> list[str]:
    if not folder.exists():
        return []
    return [str(p) for p in folder.rglob("*") if p.is_file() and (needle in p.read_bytes() or needle in p.name.encode())]


@pytest.fixture()
def app_with_secret(tmp_path, monkeypatch):
    """The app with HF_TOKEN set to a recognisable fake, a tiny shipped model and a fresh cache."""
    import streamlit as st

    from browser_util import save_tiny_shipped_model
    from lib.train import model_store

    monkeypatch.setenv("HF_TOKEN", SECRET)
    monkeypatch.setattr(model_store, "SHIPPED_DIR", tmp_path / "models")
    monkeypatch.setattr(model_store, "CACHE_DIR", tmp_path / "cache")
    save_tiny_shipped_model(tmp_path / "models")
    st.cache_resource.clear()
    st.cache_data.clear()
    yield tmp_path
    st.cache_resource.clear()
    st.cache_data.clear()


@pytest.mark.slow
def test_token_never_shown_logged_or_stored(capfd, app_with_secret):
    from streamlit.testing.v1 import AppTest

    from lib.backends import prompt_cache

    home = AppTest.from_file(str(ROOT / "Home.py"), default_timeout=120).run()
    assert not home.exception, [e.value for e in home.exception]
    rendered = [_rendered_text(home)]

    from ui.sections import in_part

    page = AppTest.from_file(str(ROOT / in_part("A")[0].page), default_timeout=180).run()
    assert not page.exception, [e.value for e in page.exception]
    rendered.append(_rendered_text(page))
    # choose DeepFloyd IF: the requirement check runs with the token (and fails here: no GPU, maybe no network)
    from ui.backend import IF_CHOICE

    page.sidebar.radio(key="backend").set_value(IF_CHOICE).run()
    assert not page.exception, [e.value for e in page.exception]
    assert page.sidebar.error, "choosing IF on a machine that cannot run it should say why"
    text = _rendered_text(page)
    rendered.append(text)

    assert all(len(r) > 1000 for r in rendered), "the pages rendered (almost) nothing: the check would be vacuous"
    for r in rendered:
        assert SECRET not in r
        assert SECRET[3:] not in r  # nor a part of it (e.g. without the hf_ prefix)
    logs = capfd.readouterr()
    assert SECRET not in logs.out and SECRET not in logs.err
    for folder in (app_with_secret / "cache", ROOT / "data" / "cache", ROOT / "data" / "embeddings",
                   prompt_cache.EMBEDDINGS_DIR):
        assert _files_containing(folder, SECRET.encode()) == []
