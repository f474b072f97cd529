"""LLVM intrinsics for Numba kernels that Numba does not expose.

- :func:`prefetch` (``llvm.prefetch``): start loading ``arr[i]``'s cache line now, so that a
  later access to it does not stall (no effect on results).
- :func:`compress16` (``llvm.masked.compressstore``): append the docs of a 16-doc chunk whose
  score passes a threshold to candidate buffers, as AVX-512 ``vcompressps`` does in one
  instruction. LLVM lowers it on every target; without AVX-512 the lowering is scalar and
  slower than a branch-free loop, so callers check :data:`HAS_AVX512` first.

Numba's on-disk cache of a ``cache=True`` kernel is invalidated by edits to the kernel's own
file only: after editing this one, delete the ``__pycache__`` folders of the kernel modules.
"""

from __future__ import annotations

import llvmlite.binding as llvm
from llvmlite import ir
from numba import types
from numba.core import cgutils, config
from numba.extending import intrinsic


def _target_has_avx512() -> bool:
    """Whether Numba compiles for a CPU with AVX-512F, by Numba's own rule: the features in
    NUMBA_CPU_FEATURES when set, else the host's."""
    features = config.CPU_FEATURES
    if features is None:
        try:
            features = llvm.get_host_cpu_features().flatten()
        except RuntimeError:  # features unknown on this platform
            return False
    return "+avx512f" in features.split(",")


#: Compile-time constant in the kernels that read it (Numba freezes module globals).
HAS_AVX512 = _target_has_avx512()


def _item_pointer(context, builder, aryty, ary, i):
    arr = context.make_array(aryty)(context, builder, ary)
    return cgutils.get_item_pointer(context, builder, aryty, arr, [i], wraparound=False)


@intrinsic
def prefetch(typingctx, arr, i):  # pragma: no cover  (compiled into kernels)
    """``prefetch(arr, i)``: a read prefetch of element ``i`` of a 1-d array (no bounds check:
    a prefetch of an invalid address is ignored by the CPU)."""
    sig = types.void(arr, types.intp)

    def codegen(context, builder, signature, args):
        ptr = _item_pointer(context, builder, signature.args[0], args[0], args[1])
        i8p = ir.IntType(8).as_pointer()
        i32 = ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0")
        # read, high temporal locality, data cache
        builder.call(fn, [builder.bitcast(ptr, i8p), i32(0), i32(3), i32(1)])
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def compress16(typingctx, acc, d, scale, thr, cand_s, cand_d, m):  # pragma: no cover
    """``compress16(acc, d, scale, thr, cand_s, cand_d, m)``: of the docs ``d .. d + 15``
    (float32 ``acc``), those with ``acc * scale >= thr`` and ``acc != 0`` go, in doc order,
    to ``cand_s[m:]`` (float32 ``acc * scale``) and ``cand_d[m:]`` (int64 doc); returns how
    many. The comparisons are those of the scalar expression (NaN passes neither). No bounds
    checks: ``acc`` must hold ``d + 16`` entries and the buffers ``m + 16``."""
    f32_c = types.Array(types.float32, 1, "C")
    if not (
        acc == f32_c
        and cand_s == f32_c
        and cand_d == types.Array(types.int64, 1, "C")
        and scale == types.float32
        and thr == types.float32
    ):
        return None  # a typing error: the IR below assumes these exact types
    sig = types.int64(acc, types.intp, types.float32, types.float32, cand_s, cand_d, types.intp)

    def codegen(context, builder, signature, args):
        acc_t, _, _, _, cs_t, cd_t, _ = signature.args
        a_acc, a_d, a_scale, a_thr, a_cs, a_cd, a_m = args
        f32, i64, i16, i32 = ir.FloatType(), ir.IntType(64), ir.IntType(16), ir.IntType(32)
        vf, vi = ir.VectorType(f32, 16), ir.VectorType(i64, 16)
        vb = ir.VectorType(ir.IntType(1), 16)

        def splat(x, vt):
            v = builder.insert_element(ir.Constant(vt, ir.Undefined), x, i32(0))
            zeros = ir.Constant(ir.VectorType(i32, 16), [0] * 16)
            return builder.shuffle_vector(v, ir.Constant(vt, ir.Undefined), zeros)

        ptr = _item_pointer(context, builder, acc_t, a_acc, a_d)
        v = builder.load(builder.bitcast(ptr, vf.as_pointer()), align=4)
        s = builder.fmul(v, splat(a_scale, vf))
        mask = builder.and_(
            builder.fcmp_ordered(">=", s, splat(a_thr, vf)),
            builder.fcmp_unordered("!=", v, ir.Constant(vf, [0.0] * 16)),
        )
        docs = builder.add(splat(a_d, vi), ir.Constant(vi, list(range(16))))
        mod = builder.module
        stores = ((s, vf, f32, "f32", cs_t, a_cs), (docs, vi, i64, "i64", cd_t, a_cd))
        for vals, vt, et, suffix, aty, a in stores:
            fnty = ir.FunctionType(ir.VoidType(), [vt, et.as_pointer(), vb])
            name = f"llvm.masked.compressstore.v16{suffix}"
            fn = cgutils.get_or_insert_function(mod, fnty, name)
            out = _item_pointer(context, builder, aty, a, a_m)
            builder.call(fn, [vals, builder.bitcast(out, et.as_pointer()), mask])
        pop = cgutils.get_or_insert_function(mod, ir.FunctionType(i16, [i16]), "llvm.ctpop.i16")
        return builder.zext(builder.call(pop, [builder.bitcast(mask, i16)]), i64)

    return sig, codegen
