"""The package as a whole: its version, how it finds the library, every C
prototype declared and used, and the two ways to install it."""
import ctypes
import ctypes.util
import glob
import json
import os
import re
import shutil
import subprocess
import sys

import pytest

import libvit
from libvit import _lib
from conftest import PACKAGE_DIR, ROOT, subprocess_env


def run_python(code, env, cwd, python=sys.executable):
    return subprocess.run([python, "-c", code], env=env, cwd=cwd, capture_output=True, text=True, timeout=120)


# ----------------------------------------------------------------- version
def test_version_is_the_projects():
    with open(os.path.join(ROOT, "meson.build")) as f:
        project = re.search(r"version\s*:\s*'([^']+)'", f.read()).group(1)
    assert libvit.__version__ == project
    assert os.environ.get("VIT_PROJECT_VERSION", project) == project
    assert libvit.library_version() == project == libvit.version()
    major, minor, patch = map(int, project.split("."))
    assert libvit.library_version_number() == major * 10000 + minor * 100 + patch


def test_major_version_check():
    _lib.check_version(libvit.library_version_number(), "x.so")
    with pytest.raises(ImportError, match=r"libvit 1\.2\.3 \(major 1\); this Python package 0\.1\.0 needs major 0"):
        _lib.check_version(10203, "x.so", "0.1.0")


def test_import_refuses_another_major(tmp_path):
    shutil.copytree(os.path.join(PACKAGE_DIR, "libvit"), tmp_path / "libvit",
                    ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "libvit" / "_version.py").write_text('__version__ = "99.0.0"\n')
    p = run_python("import libvit", subprocess_env(PYTHONPATH=str(tmp_path)), tmp_path)
    assert p.returncode != 0
    assert "ImportError" in p.stderr and "this Python package 99.0.0 needs major 99" in p.stderr, p.stderr


# ----------------------------------------------------------------- lookup
def test_lookup_order(monkeypatch, tmp_path):
    monkeypatch.setenv("VIT_LIBRARY", "/some/libvit.so.0")
    assert _lib.candidates() == [("$VIT_LIBRARY", "/some/libvit.so.0")]
    monkeypatch.delenv("VIT_LIBRARY")
    assert _lib.candidates() == [("the loader's search path", "libvit.so.0")]  # the source tree: no _install.py

    class Install:  # what meson install writes into libvit/_install.py
        LIBDIR = "/opt/vit/lib"
        LIBDIR_FROM_PACKAGE = "../../../x86_64-linux-gnu"
    monkeypatch.setitem(sys.modules, "libvit._install", Install)
    here = os.path.dirname(_lib.__file__)
    assert _lib.candidates() == [
        ("the install's libdir", os.path.normpath(os.path.join(here, "../../../x86_64-linux-gnu", "libvit.so.0"))),
        ("the install's libdir", "/opt/vit/lib/libvit.so.0"),
        ("the loader's search path", "libvit.so.0")]


def test_missing_library_is_an_import_error_listing_what_was_tried(tmp_path):
    p = run_python("import libvit", subprocess_env(VIT_LIBRARY=str(tmp_path / "nope.so")), tmp_path)
    assert p.returncode != 0 and "ImportError: libvit: cannot load the C library libvit.so.0; tried:" in p.stderr
    assert f"{tmp_path / 'nope.so'} ($VIT_LIBRARY)" in p.stderr and "set VIT_LIBRARY" in p.stderr


def test_a_library_that_is_not_libvit(tmp_path):
    other = ctypes.util.find_library("z") or ctypes.util.find_library("m")
    p = run_python("import libvit", subprocess_env(VIT_LIBRARY=other), tmp_path)
    assert p.returncode != 0 and "not a libvit with this package's functions" in p.stderr, p.stderr


def test_load_library():
    assert libvit.load_library() is libvit.load_library(libvit.library_path)
    assert libvit.load_library().vit_version_string() == libvit.library_version().encode()
    with pytest.raises(ValueError, match="already loaded"):
        libvit.load_library("/elsewhere/libvit.so.0")


# ------------------------------------------------------------- prototypes
SCALARS = {"int": ctypes.c_int, "int64_t": ctypes.c_int64, "uint64_t": ctypes.c_uint64, "int32_t": ctypes.c_int32,
           "size_t": ctypes.c_size_t, "float": ctypes.c_float, "double": ctypes.c_double,
           "unsigned": ctypes.c_uint, "char": ctypes.c_char}
CALLBACKS = {"vit_log_fn": _lib.LOG_FN, "vit_metadata_fn": _lib.METADATA_FN}


def parse_headers():
    """({name: (return type, [parameter types])} of every VIT_API function, enum names, handle names)."""
    functions, enums, handles = {}, set(), set()
    for path in sorted(glob.glob(os.path.join(ROOT, "include", "vit", "*.h"))):
        with open(path) as f:
            text = f.read()
        text = re.sub(r"/\*.*?\*/|//[^\n]*", " ", text, flags=re.S)
        text = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
        enums |= set(re.findall(r"typedef\s+enum\s+\w*\s*\{[^}]*\}\s*(\w+)\s*;", text))
        handles |= set(re.findall(r"typedef\s+struct\s+\w+\s+(\w+)\s*;", text))
        for m in re.finditer(r"VIT_API\s+([^;(]*?)\b(vit_\w+)\s*\(([^)]*)\)\s*;", text):
            params = [] if m.group(3).strip() in ("", "void") else [
                re.sub(r"\w+$", "", p.strip()).strip() for p in m.group(3).split(",")]
            functions[m.group(2)] = (m.group(1).strip(), params)
    return functions, enums, handles


def expected_ctypes(ctype, enums, handles):
    """The ctypes types that may stand for a C type in argtypes/restype."""
    tokens = ctype.replace("*", " * ").split()
    stars = tokens.count("*")
    name = " ".join(t for t in tokens if t not in ("*", "const"))
    if stars == 0:
        if name == "void":
            return [None]
        if name in enums:
            return [ctypes.c_int]
        if name in CALLBACKS:
            return [CALLBACKS[name]]
        return [SCALARS[name]]
    if stars == 1:
        if name == "char":
            return [ctypes.c_char_p]
        if name in handles or name == "void":
            return [ctypes.c_void_p]
        return [ctypes.POINTER(ctypes.c_int if name in enums else SCALARS[name]), ctypes.c_void_p]
    if stars == 2:
        return [ctypes.POINTER(ctypes.c_char_p if name == "char" else ctypes.c_void_p)]
    raise AssertionError(f"no ctypes rule for {ctype!r}")


def test_every_public_function_has_its_prototype():
    functions, enums, handles = parse_headers()
    assert len(functions) > 90, "the header parser found too few VIT_API functions"
    missing = sorted(set(functions) - set(_lib.PROTOTYPES))
    extra = sorted(set(_lib.PROTOTYPES) - set(functions))
    assert not missing, f"VIT_API functions without a prototype in bindings/python/libvit/_lib.py: {missing}"
    assert not extra, f"prototypes of functions the headers do not declare: {extra}"
    for name, (ret, params) in functions.items():
        restype, argtypes = _lib.PROTOTYPES[name]
        want_ret = [ctypes.c_int] if ret == "vit_status" else expected_ctypes(ret, enums, handles)
        assert restype in want_ret, f"{name}: restype {restype} for C {ret!r}"
        assert len(argtypes) == len(params), f"{name}: {len(argtypes)} argtypes for {len(params)} parameters"
        for i, (have, c) in enumerate(zip(argtypes, params)):
            assert have in expected_ctypes(c, enums, handles), f"{name}: argument {i} is {have} for C {c!r}"
        fn = getattr(_lib.LIB, name)
        assert fn.restype is restype and list(fn.argtypes) == argtypes, f"{name}: prototype not declared"


def test_every_public_function_is_called_by_the_package():
    sources = ""
    for path in glob.glob(os.path.join(PACKAGE_DIR, "libvit", "*.py")):
        with open(path) as f:
            sources += f.read()
    # a call through the library object, or a handle class naming its destroy function
    unused = [name for name in _lib.PROTOTYPES
              if not re.search(r'(LIB|lib)\.%s\b|_destroy = "%s"' % (name, name), sources)]
    assert not unused, f"declared but never called: {unused}"


# ---------------------------------------------------------------- installs
def test_meson_install_gives_library_and_package(tmp_path):
    """What `meson install` installs (meson introspect --installed: library and
    package), copied under a staging root as DESTDIR would put it: the package
    finds that library with neither VIT_LIBRARY nor LD_LIBRARY_PATH. (Running
    meson install here would replace the build's install log, which
    `ninja uninstall` reads.)"""
    build, meson = os.environ.get("VIT_BUILD_ROOT"), shutil.which("meson")
    if not build or not meson:
        pytest.skip("needs meson and VIT_BUILD_ROOT (meson test sets it)")
    p = subprocess.run([meson, "introspect", build, "--installed"], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    installed = {src: dst for src, dst in json.loads(p.stdout).items() if "libvit" in dst}
    if not any(dst.endswith("/libvit/__init__.py") for dst in installed.values()):
        pytest.skip("this build does not install the package (-Dpython=disabled)")
    stage = tmp_path / "stage"
    files = [dst for src, dst in installed.items() if os.sep in src]
    for src, dst in installed.items():
        target = stage / dst.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        if os.sep in src:
            shutil.copy2(src, target)
        else:  # a library alias (libvit.so.0), listed by name only: it links to the versioned file
            real = max((f for f in files if os.path.dirname(f) == os.path.dirname(dst)
                        and os.path.basename(f).startswith(src + ".")), key=len)
            os.symlink(os.path.basename(real), target)
    init = [dst for dst in installed.values() if dst.endswith("/libvit/__init__.py")][0]
    site = str(stage / os.path.dirname(os.path.dirname(init)).lstrip("/"))
    env = subprocess_env(PYTHONPATH=site, VIT_LIBRARY=None, LD_LIBRARY_PATH=None)
    p = run_python("import libvit; print(libvit.__version__); print(libvit.library_path); print(libvit.__file__)",
                   env, tmp_path)
    assert p.returncode == 0, p.stderr
    version, library, package = p.stdout.split()
    assert version == libvit.__version__
    assert library.startswith(str(stage)) and library.endswith("libvit.so.0") and os.path.exists(library)
    assert package.startswith(site)


def test_pip_install_into_a_venv(tmp_path):
    """`pip install ./bindings/python` in a virtual environment (offline: the
    venv sees the system's numpy and setuptools)."""
    if subprocess.run([sys.executable, "-c", "import ensurepip"], capture_output=True).returncode:
        pytest.skip("python3 -m venv needs ensurepip (Debian: python3-venv)")
    src, venv = tmp_path / "src", tmp_path / "venv"
    shutil.copytree(PACKAGE_DIR, src, ignore=shutil.ignore_patterns("__pycache__", "build", "*.egg-info"))
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True, timeout=300)
    python = str(venv / "bin" / "python")
    p = subprocess.run([python, "-m", "pip", "install", "--quiet", "--no-build-isolation", "--no-index", str(src)],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
    p = run_python("import libvit; print(libvit.__version__, libvit.__file__)",
                   subprocess_env(PYTHONPATH=None), tmp_path, python=python)
    assert p.returncode == 0, p.stderr
    version, package = p.stdout.split()
    assert version == libvit.__version__ and package.startswith(str(venv))
