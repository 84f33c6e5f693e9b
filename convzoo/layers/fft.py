"""FFT-based convolution: ``conv`` computed as a pointwise product of spectra (1-D/2-D/3-D).

A drop-in replacement for ``conv`` (same arguments, same ``state_dict``) that pays off for
large kernels: its cost grows with the FFT size, not with ``k_h * k_w``.
"""

from __future__ import annotations

import math

import torch

from convzoo.errors import LayerArgumentError, require
from convzoo.layers import geometry as G
from convzoo.layers.standard import Conv, layer_name
from convzoo.registry import register


def fast_fft_size(n: int, even: bool = False) -> int:
    """The smallest ``m >= max(n, 1)`` whose only prime factors are 2, 3 and 5 (and even if asked).

    Real-input FFTs (MKL, pocketfft) are about twice as fast at even lengths, so the axis of
    ``rfft`` asks for ``even``.

    >>> [fast_fft_size(n) for n in (1, 7, 11, 13, 17, 97, 131)]
    [1, 8, 12, 15, 18, 100, 135]
    >>> fast_fft_size(131, even=True)
    144
    """
    m = max(int(n), 1)
    while True:
        rest = m
        for p in (2, 3, 5):
            while rest % p == 0:
                rest //= p
        if rest == 1 and (m % 2 == 0 or not even):
            return m
        m += 1


def fft_axis_size(
    size: int, pad: G.AxisPad, k_eff: int, stride: int, out: int, even: bool = False
) -> int:
    """FFT length along one axis: the shortest circular frame in which no output we keep wraps.

    The input occupies ``[0, size)``; an output ``i`` reads input indices
    ``i - before .. i - before + k_eff - 1`` (negative and ``>= size`` are zeros). Modulo ``N``
    those must never land on data, so ``N >= size + before`` and ``N > last index read``, and
    the outputs we keep must fit in the frame too: ``N > stride * (out - 1)``. The length is
    ``stride`` times a 2/3/5-smooth number (the spectrum is folded before the inverse
    transform), and even when ``even``.
    """
    last = stride * (out - 1) + k_eff - 1 - pad[0]
    need = max(size + pad[0], last + 1, stride * (out - 1) + 1)
    return stride * fast_fft_size(-(-need // stride), even and stride % 2 == 1)


def fft_conv_cost(
    in_channels: int,
    out_channels: int,
    groups: int,
    batch: int,
    fft_h: int,
    fft_w: int,
    kernel_size: G.Ints | None = None,
    stride: G.Ints = (1, 1),
) -> dict[str, int | float]:
    """Operation counts of one :class:`FFTConv` forward pass with FFT size ``fft_h x fft_w``.

    * ``freq_bins = fft_h * (fft_w // 2 + 1)`` (real-input FFT keeps half of one axis),
    * ``forward_transforms = batch * in_channels`` real 2-D FFTs of ``fft_h x fft_w``,
    * ``inverse_transforms = batch * out_channels`` inverse real 2-D FFTs of ``inverse_h x
      inverse_w = fft_h / stride_h x fft_w / stride_w`` (the spectrum is folded first),
    * ``product_cmacs = freq_bins * batch * in_channels * out_channels / groups`` complex
      multiply-adds of the channel contraction,
    * ``kernel_dft_macs`` (only with ``kernel_size``): real multiply-adds of the kernel spectrum,
      computed as two small DFT matmuls: ``C_out * C_in / g * (2 * k_h * k_w * W' + 4 * k_h *
      fft_h * W')`` with ``W' = fft_w // 2 + 1``,
    * ``transform_flops``: the usual ``2.5 * N * log2(N)`` real flops per real transform of
      ``N`` points, summed over the forward and inverse transforms.
    """
    bins_w = fft_w // 2 + 1
    freq_bins = fft_h * bins_w
    inverse_h, inverse_w = fft_h // stride[0], fft_w // stride[1]
    fwd, inv = batch * in_channels, batch * out_channels

    def flops(n: int) -> float:
        return 2.5 * n * math.log2(n) if n > 1 else 0.0

    cost: dict[str, int | float] = {
        "fft_h": fft_h,
        "fft_w": fft_w,
        "inverse_h": inverse_h,
        "inverse_w": inverse_w,
        "freq_bins": freq_bins,
        "forward_transforms": fwd,
        "inverse_transforms": inv,
        "product_cmacs": freq_bins * batch * in_channels * out_channels // groups,
        "transform_flops": fwd * flops(fft_h * fft_w) + inv * flops(inverse_h * inverse_w),
    }
    if kernel_size is not None:
        k_h, k_w = kernel_size
        taps = out_channels * (in_channels // groups)
        cost["kernel_dft_macs"] = taps * (2 * k_h * k_w * bins_w + 4 * k_h * fft_h * bins_w)
    return cost


def dft_rows(
    n: int, taps: int, dilation: int, offset: int, half: bool, scale: float, dtype: torch.dtype
) -> torch.Tensor:
    """``Tensor[2, taps, bins]``: real and imaginary part of ``scale * exp(+2πi f r_u / n)``.

    ``r_u = u * dilation - offset`` is where tap ``u`` sits in the circular frame; the ``+``
    sign conjugates the kernel spectrum, turning convolution into PyTorch's cross-correlation.
    ``bins`` is ``n // 2 + 1`` when ``half`` (real-input FFT axis), else ``n``.
    """
    f = torch.arange(n // 2 + 1 if half else n, dtype=torch.int64)
    r = torch.arange(taps, dtype=torch.int64) * dilation - offset
    angle = torch.remainder(r[:, None] * f[None, :], n).to(torch.float64) * (2 * math.pi / n)
    return torch.stack([torch.cos(angle), torch.sin(angle)]).mul_(scale).to(dtype)


def kernel_spectrum(
    weight: torch.Tensor,
    groups: int,
    fft: G.Ints,
    dilation: G.Ints,
    offset: G.Ints,
    scale: tuple[float, float],
) -> torch.Tensor:
    """Real and imaginary planes of the conjugated kernel spectrum, frequency-major for ``bmm``.

    ``weight``: ``Tensor[C_out, C_in/g, k_h, k_w]`` ->
    ``Tensor[2, fft_h * W' * g, C_in/g, C_out/g]`` with ``W' = fft_w // 2 + 1``.
    Computed as a DFT along w (batched real matmul) then along h (one real GEMM); for kernels
    much smaller than the frame this beats zero-padding and FFT-ing every filter.
    """
    c_out, c_in_g, k_h, k_w = weight.shape
    (n_h, n_w), dt = fft, weight.dtype
    e_h = dft_rows(n_h, k_h, dilation[0], offset[0], False, scale[0], dt).to(weight.device)
    e_w = dft_rows(n_w, k_w, dilation[1], offset[1], True, scale[1], dt).to(weight.device)
    # along w: [2, 1, W', k_w] @ [k_h, k_w, (g, C_in/g, C_out/g)] -> T = [Tr; Ti]
    taps = weight.view(groups, c_out // groups, c_in_g, k_h, k_w).permute(3, 4, 0, 2, 1)
    t = torch.matmul(e_w.transpose(1, 2)[:, None], taps.reshape(k_h, k_w, -1))
    # along h, complex product as one real GEMM: [[Er, -Ei], [Ei, Er]] @ [Tr; Ti]
    er, ei = e_h[0].T, e_h[1].T
    big = torch.cat([torch.cat([er, -ei], 1), torch.cat([ei, er], 1)], 0)
    return (big @ t.reshape(2 * k_h, -1)).view(2, -1, c_in_g, c_out // groups)


def inverse(spec: torch.Tensor, fft: G.Ints, stride: G.Ints) -> torch.Tensor:
    """Inverse real 2-D FFT over the last two dims, keeping every ``stride``-th sample.

    ``Tensor[..., fft_h, fft_w // 2 + 1]`` complex -> ``Tensor[..., fft_h / s_h, fft_w / s_w]``.
    Subsampling by ``s`` is folding the spectrum into ``s`` blocks and summing them (the ``1/s``
    is already in the spectrum), so the inverse transforms are ``s_h * s_w`` times smaller.
    """
    (n_h, n_w), (s_h, s_w) = fft, stride
    m_h, m_w = n_h // s_h, n_w // s_w
    if s_h > 1:
        spec = spec.unflatten(-2, (s_h, m_h)).sum(-3)
    if s_w == 1:
        return torch.fft.irfft2(spec, s=(m_h, n_w))
    rows = torch.fft.ifft(spec, dim=-2)  # each row is now the half spectrum of a real signal
    full = torch.cat([rows, rows[..., 1 : (n_w + 1) // 2].flip(-1).conj()], -1)
    folded = full.unflatten(-1, (s_w, m_w)).sum(-2)[..., : m_w // 2 + 1]
    return torch.fft.irfft(folded, n=m_w)


@register("fft_conv", category="conv")
class FFTConv(Conv):
    """Convolution via FFT (pointwise product of spectra): same weights as conv, fast for big k.

    ``Tensor[B, C_in, H, W] -> Tensor[B, C_out, H_out, W_out]``; arguments, weight
    ``Tensor[C_out, C_in / groups, k_h, k_w]``, bias and output are exactly those of ``conv``
    (a ``conv`` state_dict loads as is). Padding is never materialised: the input is FFT'd
    at size ``fft_h x fft_w`` (see :func:`fft_axis_size`: about ``H + max(top, bottom)``, made
    2/3/5-smooth and a multiple of the stride) and the kernel is placed at its padded offset
    in that circular frame, so wrap-around only reaches outputs that are thrown away.

    Operation count per forward pass (:func:`fft_conv_cost`), with ``W' = fft_w // 2 + 1``:

    * ``B * C_in`` real 2-D FFTs of ``fft_h x fft_w``;
    * kernel spectrum by two DFT matmuls: ``C_out * C_in/g * (2 k_h k_w W' + 4 k_h fft_h W')``
      real MACs (no per-filter FFT);
    * channel contraction: ``fft_h * W' * B * C_in * C_out / g`` complex MACs, as two real
      batched matmuls ``[fft_h W' g, 2B, C_in/g] @ [fft_h W' g, C_in/g, C_out/g]``;
    * ``B * C_out`` inverse real 2-D FFTs of ``fft_h / s_h x fft_w / s_w`` (stride folds the
      spectrum first); the bias is added to the DC bin.
    """

    params_formula = "C_out·C_in·k_h·k_w/g + C_out"

    def fft_size(self, size: G.Ints) -> G.Ints:
        """``(fft_h, fft_w)`` used for an input of spatial ``size``."""
        pads = self.resolve_padding(size)
        out = self.output_size(size)
        (k_h, k_w), (d_h, d_w) = self.kernel_size, self.dilation
        e_h, e_w = G.effective_kernel(k_h, d_h), G.effective_kernel(k_w, d_w)
        return (
            fft_axis_size(size[0], pads[0], e_h, self.stride[0], out[0], even=False),
            fft_axis_size(size[1], pads[1], e_w, self.stride[1], out[1], even=True),
        )

    def cost(self, size: G.Ints, batch: int = 1) -> dict[str, int | float]:
        """:func:`fft_conv_cost` for an input ``Tensor[batch, C_in, *size]``."""
        fft_h, fft_w = self.fft_size(size)
        return fft_conv_cost(
            self.in_channels,
            self.out_channels,
            self.groups,
            batch,
            fft_h,
            fft_w,
            self.kernel_size,
            self.stride,
        )

    def check_dtype(self, x: torch.Tensor) -> None:
        name = layer_name(self)
        require(
            x.dtype in (torch.float32, torch.float64),
            name,
            "input",
            f"dtype must be float32 or float64, got {x.dtype}",
        )
        if x.dtype != self.weight.dtype:
            raise LayerArgumentError(
                name, "input", f"dtype {x.dtype} differs from the weight dtype {self.weight.dtype}"
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``Tensor[B, C_in, H, W] -> Tensor[B, C_out, H_out, W_out]``."""
        name = layer_name(self)
        G.check_input(x, name, self.in_channels, self.dims)
        self.check_dtype(x)
        size = G.spatial(x, self.dims)
        pads = self.geometry.check_fits(size, name)
        if self.dims != 2:
            return self.forward_nd(x, pads)
        out_h, out_w = self.output_size(size)
        fft = self.fft_size(size)
        (n_h, n_w), (s_h, s_w), g = fft, self.stride, self.groups
        batch, bins = x.shape[0], n_h * (n_w // 2 + 1)
        c_in_g, c_out_g = self.in_channels // g, self.out_channels // g
        if batch == 0:  # MKL refuses empty transforms
            return x.new_zeros(0, self.out_channels, out_h, out_w)

        k_re, k_im = kernel_spectrum(
            self.weight, g, fft, self.dilation, (pads[0][0], pads[1][0]), (1 / s_h, 1 / s_w)
        )
        x = G.zero_pad(x, ((0, n_h - size[0]), (0, n_w - size[1])))
        # [B, C_in, n_h, W'] complex -> [n_h W' g, (re, im) B, C_in/g], via a 2-D transpose
        spec = torch.view_as_real(torch.fft.rfft2(x)).reshape(batch * self.in_channels, -1)
        xs = spec.T.contiguous().view(bins, 2, batch, g, c_in_g).permute(0, 3, 1, 2, 4)
        xs = xs.reshape(bins * g, 2 * batch, c_in_g)
        p_re, p_im = torch.bmm(xs, k_re), torch.bmm(xs, k_im)  # [n_h W' g, 2B, C_out/g]
        y_re = p_re[:, :batch] - p_im[:, batch:]  # Xr Kr - Xi Ki
        y_im = p_im[:, :batch] + p_re[:, batch:]  # Xr Ki + Xi Kr
        if self.bias is not None:  # a constant is a DC bin of n_h * n_w / (s_h * s_w)
            y_re[:g] += self.bias.view(g, 1, c_out_g) * (n_h * n_w / (s_h * s_w))
        y = torch.complex(y_re, y_im).view(bins, g, batch, c_out_g).transpose(1, 2)
        y = y.reshape(bins, -1).T.contiguous().view(batch, self.out_channels, n_h, -1)
        return inverse(y, fft, self.stride)[..., :out_h, :out_w].contiguous()

    def forward_nd(self, x: torch.Tensor, pads: G.Pads) -> torch.Tensor:
        """Any number of axes: zero-pad, then one circular correlation per axis of length
        ``fast_fft_size(padded)`` (no output we keep wraps), keep every ``stride``-th value.

        ``Tensor[B, C_in, *S] -> Tensor[B, C_out, *S_out]``; the kernel spectrum is a
        plain ``rfftn`` of the dilated kernel (conjugated: cross-correlation).
        """
        n, g = self.dims, self.groups
        out = self.output_size(G.spatial(x, n))
        if x.shape[0] == 0:
            return x.new_zeros(0, self.out_channels, *out)
        x = G.zero_pad(x, pads)
        frame = tuple(fast_fft_size(m) for m in G.spatial(x, n))
        axes = tuple(range(-n, 0))
        kernel = self.weight.new_zeros(*self.weight.shape[:2], *self.geometry.span)
        kernel[G.last_axes(slice(None, None, d) for d in self.dilation)] = self.weight
        xs = torch.fft.rfftn(x, frame, dim=axes)
        ks = torch.fft.rfftn(kernel, frame, dim=axes).conj()
        xs = xs.unflatten(1, (g, -1))  # [B, g, C_in/g, *F]
        ks = ks.unflatten(0, (g, -1))  # [g, C_out/g, C_in/g, *F]
        ys = torch.einsum("bgi...,goi...->bgo...", xs, ks).flatten(1, 2)
        y = torch.fft.irfftn(ys, frame, dim=axes)
        y = y[
            G.last_axes(slice(0, s * (m - 1) + 1, s) for s, m in zip(self.stride, out, strict=True))
        ]
        if self.bias is not None:
            y = y + self.bias.view(-1, *(1,) * n)
        return y.contiguous()
