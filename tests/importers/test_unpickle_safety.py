"""Issue 14, finding 5: the restricted unpickler cannot be made to corrupt or exhaust memory.

The loads run in a child process, so a crash (a segfault from pointers made of bytes) fails the
test instead of killing pytest; the fuzz test runs its whole hypothesis search in one child.
"""
from __future__ import annotations

import os
import pickle
import subprocess
import sys
import textwrap

import pytest

G = b"cnumpy.core.multiarray\n"


def global_(module: str, name: str) -> bytes:
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def dtype_o() -> bytes:  # numpy.dtype('O8', False, True) with its pickled state
    return (global_("numpy", "dtype") + b"X\x02\x00\x00\x00O8\x89\x88\x87R"
            + b"(K\x03X\x01\x00\x00\x00|NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK?tb")


ATTACKS = {
    # numpy.ndarray((2,), dtype('O'), 16 bytes of pointers): a segfault when the items are read
    "ndarray_object_buffer": (b"\x80\x02" + global_("numpy", "ndarray") + b"K\x02\x85" + dtype_o()
                              + b"C\x10" + b"\x41" * 16 + b"\x87R."),
    # an array's BUILD state with object dtype and raw bytes
    "state_object_bytes": (b"\x80\x02" + G + b"_reconstruct\n" + global_("numpy", "ndarray") + b"K\x00\x85C\x01b\x87R"
                           + b"(K\x01K\x02\x85" + dtype_o() + b"\x89C\x10" + b"\x00" * 16 + b"tb."),
    # _frombuffer(bytes, dtype('O'), shape, order)
    "frombuffer_object": (b"\x80\x02" + global_("numpy.core.numeric", "_frombuffer") + b"(C\x10" + b"\x41" * 16
                          + dtype_o() + b"K\x02\x85X\x01\x00\x00\x00CtR."),
    # tiny pickles that expand to gigabytes
    "list_of_range": (b"\x80\x02" + global_("builtins", "list") + global_("builtins", "range")
                      + b"\x8a\x05\x00\x00\x00\x00\x01\x85R\x85R."),
    "bytes_of_n": b"\x80\x02" + global_("builtins", "bytes") + b"\x8a\x05\x00\x00\x00\x00\x01\x85R.",
    "ndarray_shape": (b"\x80\x02" + global_("numpy", "ndarray") + b"\x8a\x05\x00\x00\x00\x00\x01\x85\x85R."),
    "reconstruct_shape": (b"\x80\x02" + G + b"_reconstruct\n" + global_("numpy", "ndarray")
                          + b"\x8a\x05\x00\x00\x00\x00\x01\x85C\x01b\x87R."),
}

CHILD = textwrap.dedent("""
    import resource, sys
    resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))  # an unbounded expansion fails, not the machine
    from ebmc.extract.importers.unpickle import restricted_load
    from ebmc.store import StoreError
    for path in sys.argv[1:]:
        try:
            restricted_load(path)
        except StoreError as e:
            print(path, "REFUSED", str(e).replace(chr(10), " "), flush=True)
        else:
            print(path, "LOADED", flush=True)
""")


def test_memory_corruption_and_expansion_are_refused(tmp_path):
    paths = []
    for name, data in sorted(ATTACKS.items()):
        paths.append(tmp_path / f"{name}.pkl")
        paths[-1].write_bytes(data)
    done = subprocess.run([sys.executable, "-c", CHILD, *map(str, paths)], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert done.returncode == 0, f"the loader crashed (exit {done.returncode}):\n{done.stdout}\n{done.stderr[-2000:]}"
    lines = done.stdout.splitlines()
    assert len(lines) == len(ATTACKS)
    for line in lines:
        assert " REFUSED " in line and "refused to load" in line, line


def test_the_size_bound_can_be_raised_for_a_trusted_file(tmp_path):
    from ebmc.extract.importers.unpickle import UnpickleLimits, restricted_load
    from ebmc.store import StoreError
    path = tmp_path / "big.pkl"
    path.write_bytes(b"\x80\x02" + global_("builtins", "bytes") + b"M\x88\x13\x85R.")  # bytes(5000)
    with pytest.raises(StoreError, match="--unpickle.max_bytes"):
        restricted_load(path, UnpickleLimits(max_bytes=4096))
    assert restricted_load(path, UnpickleLimits(max_bytes=8192)) == bytes(5000)


def test_object_arrays_from_lists_still_load(tmp_path):
    import numpy as np

    from ebmc.extract.importers.unpickle import restricted_load
    path = tmp_path / "ids.pkl"
    ids = np.array(["a$_$1", None, 3], dtype=object)
    path.write_bytes(pickle.dumps({"id": ids}, protocol=2))
    assert restricted_load(path)["id"].tolist() == ["a$_$1", None, 3]


FUZZ = textwrap.dedent("""
    import resource, struct, sys, tempfile, os
    resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))
    from hypothesis import given, settings, strategies as st, HealthCheck
    from ebmc.extract.importers.unpickle import restricted_load
    from ebmc.store import StoreError

    NAMES = [("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "_reconstruct"),
             ("numpy.core.multiarray", "scalar"), ("numpy.core.numeric", "_frombuffer"),
             ("builtins", "list"), ("builtins", "bytes"), ("builtins", "bytearray"), ("builtins", "range"),
             ("builtins", "set"), ("builtins", "dict"), ("builtins", "tuple"), ("builtins", "int"),
             ("builtins", "slice"), ("collections", "OrderedDict"), ("_codecs", "encode")]
    DTYPES = [b"O8", b"f4", b"i8", b"V8", b"u1", b"U3"]
    small = st.integers(-3, 300)
    op = st.one_of(
        st.sampled_from([b"(", b")", b"]", b"}", b"t", b"\\x85", b"\\x86", b"\\x87", b"R", b"b", b"a", b"e",
                         b"s", b"u", b"2", b"0", b"N", b"\\x88", b"\\x89", b"\\x94", b"\\x81", b"l", b"d"]),
        st.sampled_from(NAMES).map(lambda n: b"c" + n[0].encode() + b"\\n" + n[1].encode() + b"\\n"),
        small.map(lambda i: b"J" + struct.pack("<i", i)),
        st.integers(0, 2 ** 40).map(lambda i: b"\\x8a\\x06" + i.to_bytes(6, "little")),
        st.binary(max_size=40).map(lambda b: b"C" + bytes([len(b)]) + b),
        st.sampled_from(DTYPES).map(lambda d: b"X" + struct.pack("<I", len(d)) + d),
        st.integers(0, 5).map(lambda i: b"h" + bytes([i])),
        st.integers(0, 5).map(lambda i: b"q" + bytes([i])),
    )
    path = os.path.join(tempfile.mkdtemp(), "f.pkl")

    @settings(max_examples=int(sys.argv[1]), deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(st.lists(op, max_size=40))
    def fuzz(ops):
        with open(path, "wb") as f:
            f.write(b"\\x80\\x02" + b"".join(ops) + b".")
        try:
            restricted_load(path)
        except StoreError:
            pass  # any other exception, or a crash, fails

    fuzz()
    print("FUZZ OK")
""")


def test_random_opcode_streams_from_the_allowlist_never_crash_the_process():
    done = subprocess.run([sys.executable, "-c", FUZZ, "250"], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert done.returncode == 0 and "FUZZ OK" in done.stdout, \
        f"exit {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
