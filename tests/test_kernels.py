"""The packed AND + popcount kernel against an independent recount.

``N_b = sum_{i in b} q_i Q_i`` and ``S_b = sum_{i in b} q_i`` are recomputed here by int64
matrix products of the unpacked integers over each block, and must equal the compiled
kernel on every dispatch path this CPU runs and the pure-torch reference path, for ragged
``K``, blocks of 128 and ``None``, ``T = 1, 2, 3, 4, 5, 8`` planes, 1-, 2-, 4-bit and ternary codes.
"""

import os
import shutil
import subprocess
import sys

import pytest
import torch

from tbnn.kernels import build, packed

HAS_KERNEL = packed.kernel() is not None
PATHS = list(range(packed.kernel().tb_best_path() + 1)) if HAS_KERNEL else []


def _recount(q, Q, block):
    """Per-block ``q @ Q.T`` and row sums in int64, block by block of the unpacked values."""
    k = q.shape[-1]
    bs = k if block is None else block
    n, s = [], []
    for lo in range(0, k, bs):
        qb, Qb = q[:, lo:lo + bs].to(torch.int64), Q[:, lo:lo + bs].to(torch.int64)
        n.append(qb @ Qb.t())
        s.append(qb.sum(-1, keepdim=True))
    return torch.stack(n), torch.stack(s)


def _codes(bits, shape, gen):
    if bits == 1.5:
        return torch.randint(-1, 2, shape, generator=gen)
    return torch.randint(0, 2 ** bits, shape, generator=gen)


@pytest.mark.parametrize("block", [128, None, 100])
@pytest.mark.parametrize("k", [64, 200, 1000])
def test_pack_bits_matches_the_reference_and_round_trips(block, k):
    gen = torch.Generator().manual_seed(k)
    bits = torch.rand(7, k, generator=gen) < 0.3
    ref = packed.pack_bits_reference(bits, block)
    if HAS_KERNEL:
        assert torch.equal(packed.pack_bits(bits, block), ref)
    bs, nb, wpb = packed.words_per_block(block, k)
    back = ((ref.unsqueeze(-1) >> torch.arange(64)) & 1).reshape(7, nb, wpb * 64)[:, :, :bs].reshape(7, -1)[:, :k]
    assert torch.equal(back.bool(), bits)
    assert int(ref.shape[1]) == nb * wpb


@pytest.mark.parametrize("bits", [1, 1.5, 2, 4])
@pytest.mark.parametrize("timesteps", [1, 2, 3, 4, 5, 8])  # each plane count the AVX-512 path compiles apart, and one it does not
@pytest.mark.parametrize("block", [128, None])
@pytest.mark.parametrize("o", [13, 45])  # 45: passes of 32, 16 and 8 outputs
def test_row_terms_equal_a_recount(bits, timesteps, block, o):
    gen = torch.Generator().manual_seed(timesteps * 10 + int(2 * bits) + o)
    k, m = 331, 9  # ragged K, outputs not a multiple of 8
    Q = _codes(bits, (o, k), gen)
    spikes = torch.rand(timesteps, m, k, generator=gen) < 0.4
    weights = [2 ** (timesteps - 1 - t) for t in range(timesteps)]
    q = sum(w * spikes[t].to(torch.int64) for t, w in enumerate(weights))
    n_ref, s_ref = _recount(q, Q, block)
    pw = packed.pack_weights(Q, block)
    assert pw.words.shape[0] == {1: 1, 1.5: 2, 2: 2, 4: 4}[bits]
    impls = ["torch"] + (["c"] if HAS_KERNEL else [])
    for impl in impls:
        for planes in (packed.step_planes(spikes, weights), packed.bit_planes(q)):
            n, s = packed.row_terms(planes, pw, impl=impl)
            assert n.dtype == torch.int32
            assert torch.equal(n.to(torch.int64), n_ref), impl
            assert torch.equal(s.to(torch.int64), s_ref), impl


@pytest.mark.skipif(not HAS_KERNEL, reason="no compiled kernel here")
@pytest.mark.parametrize("active", [1.0, 0.01])  # 1 %: most words silent (skipped), some blocks silent
@pytest.mark.parametrize("path", PATHS)
def test_every_dispatch_path_this_cpu_runs_gives_the_same_integers(path, active):
    gen = torch.Generator().manual_seed(path)
    k, m = 1100, 5  # block None at K = 2560: 40 words, past the AVX2 path's 31-word byte counters
    for block, kk in ((128, k), (None, k), (None, 64 * 40)):
        Q = _codes(1.5, (16, kk), gen)
        q = torch.randint(0, 16, (m, kk), generator=gen) * (torch.rand(m, kk, generator=gen) < active)
        pw = packed.pack_weights(Q, block)
        planes = packed.bit_planes(q)
        x = packed.pack_bits(planes.bits.reshape(-1, kk), block).reshape(len(planes.coefs), m, -1)
        coefs = torch.tensor(planes.coefs)
        got = packed.block_terms(x, coefs, pw, path=path)
        ref = packed.block_terms_reference(x, coefs, pw)
        assert torch.equal(got, ref)
        n_ref, _ = _recount(q, Q, block)
        assert torch.equal(got[..., :16].to(torch.int64), n_ref)


@pytest.mark.skipif(not HAS_KERNEL, reason="no compiled kernel here")
def test_a_path_beyond_this_cpu_is_refused():
    best = packed.kernel().tb_best_path()
    if best == 3:
        pytest.skip("this CPU runs every path")
    pw = packed.pack_weights(torch.ones(8, 64, dtype=torch.int64), None)
    x = torch.zeros(1, 1, 1, dtype=torch.int64)
    with pytest.raises(ValueError, match="cannot run on this CPU"):
        packed.block_terms(x, torch.ones(1, dtype=torch.int64), pw, path=3)


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="bits must hold only 0 and 1"):
        packed.pack_bits_reference(torch.tensor([[0, 2]]), None)
    with pytest.raises(ValueError, match="q must hold non-negative integers"):
        packed.bit_planes(torch.tensor([[-1.0, 2.0]]))
    with pytest.raises(ValueError, match="codes must hold integers"):
        packed.pack_weights(torch.tensor([[0.5, 1.0]]), None)
    with pytest.raises(ValueError, match="impl must be one of"):
        packed.pack_bits(torch.tensor([[True]]), None, impl="asm")


@pytest.mark.skipif(build.compiler() is None, reason="no C compiler here")
def test_two_processes_build_once_and_a_stale_lock_does_not_block(tmp_path):
    """Two processes building into an empty cache at once both load one library; a lock file
    left by a killed build (no process holds it) does not stop the next build."""
    cc = build.compiler()
    target = build.library_path(cc, tmp_path)
    target.with_suffix(".lock").write_text("")  # as a killed build leaves it
    code = ("import sys; from pathlib import Path; from tbnn.kernels import build; "
            "lib = build.load(Path(sys.argv[1])); print(lib.tb_best_path())")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True)
             for _ in range(2)]
    outs = [p.communicate(timeout=120)[0].strip() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert outs[0] == outs[1] and outs[0] in {"0", "1", "2", "3"}
    assert [p.name for p in tmp_path.iterdir() if p.suffix == ".so"] == [target.name]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tbnn-build-")]


def test_no_compiler_means_no_kernel(monkeypatch, tmp_path):
    monkeypatch.setattr(build, "compiler", lambda: None)
    assert build.load(tmp_path) is None


@pytest.mark.skipif(not HAS_KERNEL, reason="no compiled kernel here")
def test_a_path_that_fails_its_self_test_is_not_used(monkeypatch, capsys):
    best = packed.kernel().tb_best_path()
    if best == 0:
        pytest.skip("only the portable path here")
    real = packed.block_terms
    monkeypatch.setattr(packed, "block_terms", lambda *a, path=None, **k: real(*a, path=path, **k) + (path == best))
    packed.best_path.cache_clear()
    try:
        assert packed.best_path() == best - 1
        assert "failed its self-test" in capsys.readouterr().err
    finally:
        monkeypatch.undo()
        packed.best_path.cache_clear()
    assert packed.best_path() == best


@pytest.mark.parametrize("active", [1.0, 0.02])
@pytest.mark.parametrize("block", [128, None])
def test_the_fused_read_out_adds_the_blocks_in_order(block, active):
    """``sum_b g_b N_b`` from the kernel equals the block-ordered float64 sum of the recounted terms."""
    gen = torch.Generator().manual_seed(7)
    k, m = 500, 6
    Q = _codes(1.5, (21, k), gen)
    q = torch.randint(0, 16, (m, k), generator=gen) * (torch.rand(m, k, generator=gen) < active)
    n_ref, s_ref = _recount(q, Q, block)
    gains = torch.randn(n_ref.shape[0], m, generator=gen).to(torch.float32).to(torch.float64)
    want = n_ref[0].double() * gains[0].unsqueeze(-1)
    for b in range(1, n_ref.shape[0]):
        want = want + n_ref[b].double() * gains[b].unsqueeze(-1)
    pw = packed.pack_weights(Q, block)
    for impl in ["torch"] + (["c"] if HAS_KERNEL else []):
        cur, s = packed.row_readout(packed.bit_planes(q), pw, gains, impl=impl)
        assert torch.equal(cur, want), impl
        assert torch.equal(s.to(torch.int64), s_ref), impl
    with pytest.raises(ValueError, match="gains must be \\[blocks, rows\\]"):
        packed.row_readout(packed.bit_planes(q), pw, gains[:, :2])


@pytest.mark.skipif(build.compiler() is None, reason="no C compiler here")
def test_with_the_cache_off_the_kernel_is_built_in_a_temporary_folder(monkeypatch):
    monkeypatch.setenv("TBNN_CACHE", "off")
    lib = build.load()
    assert lib is not None and lib.tb_best_path() in (0, 1, 2, 3)


def test_without_a_compiler_the_engine_says_so_once_and_runs_dense(tmp_path):
    """A fresh process with no compiler on PATH: one line on stderr, and the dense engine."""
    code = ("import torch, tbnn; torch.manual_seed(0); "
            "net = torch.nn.Sequential(tbnn.TemporalBinary(4, grid='minmax'), tbnn.TBLinear(8, 3)); "
            "print(tbnn.simulate(net, torch.randn(5, 8)).summary['engine']['layers']['1'])")
    env = {**os.environ, "CC": "", "PATH": str(tmp_path), "TBNN_CACHE": str(tmp_path)}
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300,
                         check=False)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "dense (no compiled kernel)"
    lines = [x for x in run.stderr.splitlines() if "popcount kernel" in x]
    assert lines == [("tbnn: the packed popcount kernel is not available (no C compiler found (set CC)); "
                      "using the dense engine.")]


def test_a_failed_build_is_one_sentence_and_leaves_no_library(tmp_path):
    false = shutil.which("false")
    if false is None:
        pytest.skip("no `false` command here")
    target = tmp_path / "popcount-x.so"
    with pytest.raises(RuntimeError, match="the kernel build with .*false failed"):
        build.build(target, false)
    assert not target.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".tbnn-build-")]


@pytest.mark.skipif(not HAS_KERNEL, reason="no compiled kernel here")
@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("block", [128, None, 100, 7])
def test_codes_packed_in_one_pass_equal_their_bit_planes(block, path):
    gen = torch.Generator().manual_seed(3)
    for top, k in ((16, 300), (2, 37), (1000, 130)):
        q = (torch.randint(0, top, (9, k), generator=gen) * (torch.rand(9, k, generator=gen) < 0.5)).float()
        planes = packed.code_planes(q, block, path=path)
        ref = packed.bit_planes(q)
        assert planes.coefs == ref.coefs and planes.k == k
        bits = ref.bits.reshape(-1, k)
        assert torch.equal(planes.words, packed.pack_bits_reference(bits, block).reshape(len(ref.coefs), 9, -1))
    for bad in (-1.0, 0.5, float("nan"), float("inf")):
        for at in (1, 20):  # in a vector's lanes, and in the AVX2 path's scalar tail
            q = torch.ones(1, 23)
            q[0, at] = bad
            with pytest.raises(ValueError, match="q must hold non-negative integers"):
                packed.code_planes(q, block, path=path)


@pytest.mark.skipif(not HAS_KERNEL, reason="no compiled kernel here")
@pytest.mark.parametrize("path", PATHS)
def test_every_path_packs_and_reads_out_as_the_reference(path):
    """Packing (64 bytes a step on AVX2 / AVX-512, ragged tails) and the fused read-out on each path."""
    gen = torch.Generator().manual_seed(11 + path)
    for k, block in ((64, None), (130, 128), (1000, 100), (2600, None)):
        bits = torch.rand(5, k, generator=gen) < 0.3
        assert torch.equal(packed.pack_bits(bits, block, path=path), packed.pack_bits_reference(bits, block))
    k, m = 700, 7
    for bits, active in ((1, 1.0), (1.5, 0.3), (4, 0.02)):  # 1 plane, ternary (negative factors), 4 planes
        Q = _codes(bits, (19, k), gen)
        q = torch.randint(0, 16, (m, k), generator=gen) * (torch.rand(m, k, generator=gen) < active)
        q[-1] = 0  # a silent row
        for block in (128, None):
            pw = packed.pack_weights(Q, block)
            for planes in (packed.bit_planes(q), packed.step_planes(torch.rand(3, m, k, generator=gen) < active,
                                                                    [5, 3, 1])):  # factors not powers of two
                x = packed.pack_bits(planes.bits.reshape(-1, k), block).reshape(len(planes.coefs), m, -1)
                coefs = torch.tensor(planes.coefs)
                gains = torch.randn(x.shape[-1] // packed.words_per_block(block, k)[2], m,
                                    generator=gen).to(torch.float32).to(torch.float64)
                cur, s = packed.block_readout(x, coefs, pw, gains, path=path)
                ref_cur, ref_s = packed.block_readout(x, coefs, pw, gains, impl="torch")
                assert torch.equal(cur, ref_cur) and torch.equal(s, ref_s)
                assert torch.equal(packed.block_terms(x, coefs, pw, path=path), packed.block_terms_reference(x, coefs, pw))


@pytest.mark.skipif(not HAS_KERNEL, reason="no compiled kernel here")
@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("timesteps", [1, 4, 8, 24])
def test_the_compiled_firing_equals_the_torch_loop(path, timesteps):
    from tbnn.core.firing import binary_thresholds, integrate_and_fire
    from tbnn.kernels.fire import fire_checked

    gen = torch.Generator().manual_seed(timesteps)
    levels = torch.arange(2 ** min(timesteps, 10) + 1, dtype=torch.float32) / 2 ** min(timesteps, 10)
    below = torch.nextafter(levels, torch.full_like(levels, -1.0))  # one ulp under each threshold sum
    v = torch.cat([levels, below, torch.rand(3000, generator=gen)]).reshape(2, -1)
    th = binary_thresholds(timesteps)
    membrane = v.clone()
    want = integrate_and_fire(membrane, th, overwrite=True)  # membrane: where the loop leaves it
    w = 2.0 ** torch.arange(timesteps - 1, -1, -1, dtype=torch.float32)
    q = torch.tensordot(w, want.float(), dims=1)
    r = v.clone()
    spikes, differ = fire_checked(r, th, w, q, path=path)
    assert spikes.dtype == torch.bool and torch.equal(spikes, want) and differ == 0
    assert torch.equal(r, membrane)
    q[0, 0] += 1.0  # a code the spikes do not make is caught
    q[-1, -1] = float("nan")
    assert fire_checked(v.clone(), th, w, q, path=path)[1] == 2
    assert fire_checked(v.double(), th, w, q) is None  # not float32: the caller fires in torch


@pytest.mark.skipif(not HAS_KERNEL, reason="no compiled kernel here")
def test_a_neuron_fires_the_same_spikes_with_and_without_the_kernel(monkeypatch):
    import tbnn
    from tbnn.nn import neurons

    torch.manual_seed(0)
    x = torch.randn(33, 300)
    for neuron in (tbnn.TemporalBinary(4), tbnn.TemporalBinary(6, grid="minmax", block=None)):
        monkeypatch.setattr(neurons.TemporalBinary, "_fire_compiled", lambda self, x: None)  # the firing kernel alone
        fast = neuron.fire(x)
        monkeypatch.setattr(neurons, "fire_checked", lambda *a, **k: None)
        slow = neuron.fire(x)
        monkeypatch.undo()
        assert fast.raw.dtype == slow.raw.dtype == torch.bool and torch.equal(fast.raw, slow.raw)
        assert torch.equal(fast.raw, neuron.encode(x).spikes)


@pytest.mark.skipif(not HAS_KERNEL, reason="no compiled kernel here")
@pytest.mark.parametrize("path", PATHS)
def test_the_popcount_microbenchmark_counts_the_anded_bits(path):
    gen = torch.Generator().manual_seed(path)
    x, w = (torch.randint(-2**62, 2**62, (96,), generator=gen) for _ in range(2))
    x[0], w[0] = -1, -1  # all 64 bits, the sign bit included
    want = sum(((a & b) % 2**64).bit_count() for a, b in zip(x.tolist(), w.tolist()))
    assert packed.and_popcount(x, w, repeats=3, path=path) == 3 * want
    with pytest.raises(ValueError, match="multiple of 32"):
        packed.and_popcount(x[:40], w[:40])


@pytest.mark.skipif(not HAS_KERNEL, reason="no compiled kernel here")
@pytest.mark.parametrize("path", PATHS)
def test_every_path_fuses_the_current_as_torch_rounds_it(path):
    """``block_current`` = ``float32(rest + alpha * sum_b g_b N_b)`` as ``torch.addcmul`` rounds it; ``block_sums`` = ``S_b``."""
    gen = torch.Generator().manual_seed(5 + path)
    for k, o, block in ((300, 21, 128), (700, 8, None), (64, 3, 128)):
        m = 29
        Q = _codes(1.5, (o, k), gen)
        pw = packed.pack_weights(Q, block)
        planes = packed.step_planes(torch.rand(4, m, k, generator=gen) < 0.3, [8, 4, 2, 1])
        x = packed.pack_bits(planes.bits.reshape(-1, k), block).reshape(4, m, -1)
        coefs = torch.tensor(planes.coefs)
        nb = packed.words_per_block(block, k)[1]
        gains = torch.randn(nb, m, generator=gen).to(torch.float32).to(torch.float64)
        ell = 1 + k % 5  # the rest of the current: [B, L] @ [L, O] + bias, in rest_reference's order
        lhs = torch.randn(m, ell, generator=gen, dtype=torch.float64)
        rhs = torch.randn(ell, o, generator=gen, dtype=torch.float64) * 100
        alpha = torch.rand(o, generator=gen, dtype=torch.float64)
        cur, s = packed.block_readout(x, coefs, pw, gains, impl="torch")
        for bias in (torch.randn(o, generator=gen, dtype=torch.float64), None):
            rest = packed.rest_reference(lhs, rhs, bias)
            want = torch.addcmul(rest, cur[:, :o], alpha, out=torch.empty(m, o))
            assert torch.equal(packed.block_current(x, coefs, pw, gains, lhs, rhs, bias, alpha, path=path), want)
        assert torch.equal(packed.block_sums(x, coefs, pw, path=path), s)
    with pytest.raises(ValueError, match="gains, lhs, rhs, bias and alpha must be"):
        packed.block_current(x, coefs, pw, gains, lhs, rhs[:, :1], None, alpha)


def test_rest_reference_adds_left_to_right():
    """Each product and sum rounded once, left to right: against Python floats (IEEE doubles) one by one."""
    gen = torch.Generator().manual_seed(3)
    lhs = torch.randn(7, 5, generator=gen, dtype=torch.float64) * 1e3
    rhs = torch.randn(5, 6, generator=gen, dtype=torch.float64) * 1e-3
    bias = torch.randn(6, generator=gen, dtype=torch.float64) * 1e5
    for b in (bias, None):
        got = packed.rest_reference(lhs, rhs, b)
        for m in range(7):
            for o in range(6):
                r = lhs[m, 0].item() * rhs[0, o].item()
                r = b[o].item() + r if b is not None else r
                for j in range(1, 5):
                    r = r + lhs[m, j].item() * rhs[j, o].item()
                assert got[m, o].item() == r


def _one_bit_terms(q, Q, path, case):
    """The kernel's terms of codes ``q`` against 1-bit weights ``Q`` (blocks of 128) on ``path``, checked
    against the torch reference and the recount; returns ``(x, coefs, pw, N_b)``."""
    pw = packed.pack_weights(Q, block=128)
    planes = packed.bit_planes(q)
    x, coefs = packed.packed_rows(planes, pw, impl="torch"), torch.tensor(planes.coefs)
    n, _ = _recount(q, Q, 128)
    terms = packed.block_terms(x, coefs, pw, path=path)
    assert torch.equal(terms, packed.block_terms_reference(x, coefs, pw))
    assert torch.equal(terms[..., :Q.shape[0]].to(torch.int64), n), case
    return x, coefs, pw, n


@pytest.mark.skipif(not HAS_KERNEL, reason="no compiled kernel here")
@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("planes_j", [1, 2, 3, 4, 5, 8])
def test_one_bit_weights_plane_by_plane_for_any_output_count(path, planes_j):
    """1-bit weights with power-of-two plane factors take the AVX-512 path's plane-by-plane loop
    (compiled apart for 1, 2, 3, 4 and 8 planes), in passes of 32, 16 and 8 outputs: every output
    count and activity gives the recount's integers."""
    gen = torch.Generator().manual_seed(planes_j)
    for outs in (1, 8, 9, 16, 24, 31, 32, 33, 47, 64, 71, 130):
        for active in (1.0, 0.05, 0.003, 0.0):
            Q = torch.randint(0, 2, (outs, 300), generator=gen)
            q = torch.randint(0, 2**planes_j, (13, 300), generator=gen) * (torch.rand(13, 300, generator=gen) < active)
            _one_bit_terms(q, Q, path, (outs, active))


@pytest.mark.skipif(not HAS_KERNEL, reason="no compiled kernel here")
@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("planes_j", [1, 4, 5, 8])
def test_one_bit_weights_in_tiles_of_rows_equal_the_recount(path, planes_j):
    """Blocks of 128 with few silent words take the AVX-512 path's tiles (64 rows x 32 outputs,
    outputs outer, every word counted), else its row-by-row lists of nonzero words: on both sides of
    the quarter-silent line, across ragged tiles of rows, the terms, the fused read-out (block order)
    and the fused current equal the recount and the torch reference on every path."""
    gen = torch.Generator().manual_seed(40 + planes_j)
    for rows, k, outs in ((63, 256, 45), (65, 300, 33), (130, 1024, 70), (200, 128, 9)):
        nw = -(-k // 64)
        for silent in (0.0, 0.2, 0.3):  # the share of each row's words left silent in every plane
            q = torch.randint(1, 2**planes_j, (rows, k), generator=gen)
            for r in range(rows):  # whole words silent: the tile path counts them, the row path skips them
                for w in torch.randperm(nw, generator=gen)[:int(silent * nw)].tolist():
                    q[r, 64 * w:64 * w + 64] = 0
            Q = torch.randint(0, 2, (outs, k), generator=gen)
            x, coefs, pw, n = _one_bit_terms(q, Q, path, (rows, k, silent))
            gains = torch.randn(n.shape[0], rows, generator=gen).to(torch.float32).to(torch.float64)
            cur, s_out = packed.block_readout(x, coefs, pw, gains, path=path)
            want_cur, want_s = packed.block_readout(x, coefs, pw, gains, impl="torch")
            assert torch.equal(cur[:, :outs], want_cur[:, :outs]) and torch.equal(s_out, want_s)
            lhs = torch.randn(rows, 3, generator=gen, dtype=torch.float64)
            rhs = torch.randn(3, outs, generator=gen, dtype=torch.float64)
            alpha = torch.rand(outs, generator=gen, dtype=torch.float64)
            want = torch.addcmul(packed.rest_reference(lhs, rhs, None), want_cur[:, :outs], alpha,
                                 out=torch.empty(rows, outs))
            assert torch.equal(packed.block_current(x, coefs, pw, gains, lhs, rhs, None, alpha, path=path), want)
