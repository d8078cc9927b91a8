"""Evidence plots (matplotlib, Agg, no pyplot state): plain numpy arrays in, PNG bytes out.

Each function draws one figure a sign-off engineer reads: the photon transfer curve with its
fit (EMVA 1288 R4.0 §6.3), linearity residuals (§6.9), the SNR curve (§6.6, with the ideal
sensor's √μp), a defect map over the dark frame, MTF curves per field point (ISO 12233:2023
e-SFR), a focus sweep, the ColorChecker measured vs. reference with ΔE labels, a shading
map and the ISO 17957 shading grid (luminance and colour shading per cell). They take arrays,
not analysis result classes, so any analysis can feed them.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from harness.evidence.allure import thumbnail

DPI = 100


def _figure(width: float = 6.4, height: float = 4.2) -> tuple[Figure, Axes]:
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot()


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    return buf.getvalue()


def _vectors(names: Sequence[str], *arrays: np.ndarray | Sequence[float]) -> list[np.ndarray]:
    out = [np.asarray(a, dtype=float).ravel() for a in arrays]
    sizes = {a.size for a in out}
    if len(sizes) != 1:
        shapes = ", ".join(f"{n}={a.size}" for n, a in zip(names, out, strict=True))
        raise ValueError(f"arrays must have the same length: {shapes}")
    if not out[0].size:
        raise ValueError(f"{names[0]} is empty")
    return out


def photon_transfer(mean_dn: np.ndarray, var_dn2: np.ndarray, *, gain: float,
                    intercept: float, fit_mask: np.ndarray | None = None,
                    title: str = "Photon transfer") -> bytes:
    """Temporal variance vs. mean (dark subtracted) with the fit σ²_y = K·μ_y + b (§6.3)."""
    mean, var = _vectors(("mean_dn", "var_dn2"), mean_dn, var_dn2)
    mask = np.ones(mean.size, bool) if fit_mask is None else np.asarray(fit_mask, bool).ravel()
    if mask.size != mean.size:
        raise ValueError(f"fit_mask has {mask.size} entries for {mean.size} points")
    fig, ax = _figure()
    ax.plot(mean[mask], var[mask], "o", color="tab:blue", label="used for the fit")
    if (~mask).any():
        ax.plot(mean[~mask], var[~mask], "o", mfc="none", color="tab:gray", label="not used")
    xs = np.linspace(0.0, float(mean[mask].max()), 50)
    ax.plot(xs, gain * xs + intercept, "-", color="tab:red",
            label=f"fit: K = {gain:.4g} DN/e⁻, b = {intercept:.3g} DN²")
    ax.set(xlabel="mean signal μ_y − μ_y.dark [DN]", ylabel="variance σ²_y − σ²_y.dark [DN²]",
           title=title)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left")
    return _png(fig)


def linearity_residuals(signal_x: np.ndarray, residual_pct: np.ndarray, *,
                        x_label: str = "irradiation μ_p [photons/pixel]",
                        limit_pct: float | None = None, title: str = "Linearity") -> bytes:
    """Deviation from the linear fit in % (EMVA 1288 §6.9), with ±limit lines if given."""
    x, r = _vectors(("signal_x", "residual_pct"), signal_x, residual_pct)
    fig, ax = _figure()
    ax.axhline(0.0, color="black", lw=0.8)
    ax.plot(x, r, "o-", color="tab:blue", label="deviation")
    if limit_pct is not None:
        for s in (-1, 1):
            ax.axhline(s * limit_pct, color="tab:red", ls="--",
                       label=f"limit ±{limit_pct:g} %" if s > 0 else None)
    lin = float(np.max(np.abs(r)))
    ax.set(xlabel=x_label, ylabel="deviation from linear fit [%]",
           title=f"{title}: max |LE| = {lin:.3g} %")
    ax.grid(alpha=0.3)
    ax.legend(loc="best")
    return _png(fig)


def snr_curve(photons: np.ndarray, snr: np.ndarray, *, model_snr: np.ndarray | None = None,
              title: str = "Signal-to-noise ratio") -> bytes:
    """Measured SNR vs. photons per pixel (log-log) with the ideal √μp line (§6.6)."""
    p, s = _vectors(("photons", "snr"), photons, snr)
    if (p <= 0).any():
        raise ValueError("photons must be > 0 for a log axis")
    fig, ax = _figure()
    ax.loglog(p, np.clip(s, 1e-3, None), "o", color="tab:blue", label="measured")
    xs = np.geomspace(p.min(), p.max(), 100)
    ax.loglog(xs, np.sqrt(xs), "--", color="tab:gray", label="ideal sensor √μ_p")
    if model_snr is not None:
        (m,) = _vectors(("model_snr",), model_snr)
        if m.size != p.size:
            raise ValueError(f"model_snr has {m.size} points for {p.size}")
        ax.loglog(p, m, "-", color="tab:red", label="model")
    ax.set(xlabel="μ_p [photons/pixel]", ylabel="SNR", title=title)
    ax.grid(alpha=0.3, which="both")
    ax.legend(loc="upper left")
    return _png(fig)


def defect_map(dark_frame: np.ndarray, rows: np.ndarray, cols: np.ndarray, *,
               kinds: Sequence[str] | None = None, max_side: int = 800,
               title: str = "Defect pixels over the dark frame") -> bytes:
    """The dark frame (percentile-stretched preview) with each defect marked by kind."""
    if dark_frame.ndim != 2:
        raise ValueError(f"dark_frame must be 2-D, got {dark_frame.shape}")
    r, c = _vectors(("rows", "cols"), rows, cols) if np.size(rows) else (np.empty(0),
                                                                        np.empty(0))
    labels = list(kinds) if kinds is not None else ["defect"] * r.size
    if len(labels) != r.size:
        raise ValueError(f"kinds has {len(labels)} entries for {r.size} defects")
    h, w = dark_frame.shape
    preview = thumbnail(dark_frame, max_side)
    scale = preview.shape[1] / w
    fig, ax = _figure(7.0, 7.0 * h / w + 0.8)
    ax.imshow(preview, cmap="gray", extent=(0, w, h, 0), interpolation="nearest")
    palette = ["red", "yellow", "cyan", "magenta", "lime"]
    for i, kind in enumerate(dict.fromkeys(labels)):
        sel = np.array([k == kind for k in labels])
        ax.scatter(c[sel] + 0.5, r[sel] + 0.5, s=36, facecolors="none",
                   edgecolors=palette[i % len(palette)], linewidths=1.2,
                   label=f"{kind} ({int(sel.sum())})")
    ax.set(xlim=(0, w), ylim=(h, 0), xlabel="column", ylabel="row",
           title=f"{title} ({r.size} defects; preview ×{scale:.2g})")
    if r.size:
        ax.legend(loc="upper right", fontsize=8)
    return _png(fig)


def mtf_curves(frequency: np.ndarray, curves: Mapping[str, np.ndarray], *,
               nyquist: float = 0.5, unit: str = "cy/px",
               title: str = "MTF per field point") -> bytes:
    """MTF vs. spatial frequency, one curve per field point, with MTF50 and Nyquist marked."""
    if not curves:
        raise ValueError("curves is empty: give at least one field point")
    (f,) = _vectors(("frequency",), frequency)
    fig, ax = _figure()
    for name, mtf in curves.items():
        (m,) = _vectors((name,), mtf)
        if m.size != f.size:
            raise ValueError(f"curve {name!r} has {m.size} points for {f.size} frequencies")
        below = np.nonzero(m < 0.5)[0]
        mtf50 = ""
        if below.size and below[0] > 0:
            i = below[0]
            f50 = f[i - 1] + (0.5 - m[i - 1]) * (f[i] - f[i - 1]) / (m[i] - m[i - 1])
            mtf50 = f", MTF50 = {f50:.3g}"
        ax.plot(f, m, "-", label=f"{name}{mtf50}")
    ax.axhline(0.5, color="gray", ls=":", lw=0.8)
    ax.axvline(nyquist, color="black", ls="--", lw=0.8, label=f"Nyquist {nyquist:g} {unit}")
    ax.set(xlabel=f"spatial frequency [{unit}]", ylabel="MTF", ylim=(0, 1.05),
           xlim=(0, float(f.max())), title=title)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper right", fontsize=8)
    return _png(fig)


def focus_sweep(position: np.ndarray, metric: np.ndarray, *, best: float | None = None,
                position_unit: str = "steps", metric_name: str = "sharpness",
                title: str = "Focus sweep") -> bytes:
    """A focus metric vs. lens position, with the chosen best focus marked."""
    x, y = _vectors(("position", "metric"), position, metric)
    fig, ax = _figure()
    order = np.argsort(x)
    ax.plot(x[order], y[order], "o-", color="tab:blue")
    if best is not None:
        ax.axvline(best, color="tab:red", ls="--", label=f"best focus {best:.4g} {position_unit}")
        ax.legend(loc="best")
    ax.set(xlabel=f"lens position [{position_unit}]", ylabel=metric_name, title=title)
    ax.grid(alpha=0.3)
    return _png(fig)


def colorchecker(measured_rgb: np.ndarray, reference_rgb: np.ndarray, delta_e: np.ndarray, *,
                 names: Sequence[str] | None = None, columns: int = 6,
                 metric: str = "ΔE2000", title: str = "ColorChecker") -> bytes:
    """Each patch as measured (top half) over reference (bottom half), labelled with ΔE.

    Colours are display sRGB in 0..1 (encode before calling); patch order is row-major.
    """
    meas = np.asarray(measured_rgb, float)
    ref = np.asarray(reference_rgb, float)
    (de,) = _vectors(("delta_e",), delta_e)
    if meas.shape != ref.shape or meas.ndim != 2 or meas.shape[1] != 3:
        raise ValueError(f"measured_rgb {meas.shape} and reference_rgb {ref.shape} must both "
                         "be (N, 3)")
    if de.size != meas.shape[0]:
        raise ValueError(f"delta_e has {de.size} values for {meas.shape[0]} patches")
    n = meas.shape[0]
    rows = -(-n // columns)
    cell, gap = 20, 2
    img = np.ones((rows * (2 * cell + gap) + gap, columns * (2 * cell + gap) + gap, 3))
    for i in range(n):
        r, c = divmod(i, columns)
        y0, x0 = gap + r * (2 * cell + gap), gap + c * (2 * cell + gap)
        img[y0:y0 + cell, x0:x0 + 2 * cell] = np.clip(meas[i], 0, 1)
        img[y0 + cell:y0 + 2 * cell, x0:x0 + 2 * cell] = np.clip(ref[i], 0, 1)
    fig, ax = _figure(7.5, 7.5 * img.shape[0] / img.shape[1] + 0.6)
    ax.imshow(img, interpolation="nearest")
    for i in range(n):
        r, c = divmod(i, columns)
        y0, x0 = gap + r * (2 * cell + gap), gap + c * (2 * cell + gap)
        lum = float(np.dot(ref[i], [0.2126, 0.7152, 0.0722]))
        label = f"{names[i]}\n" if names is not None and i < len(names) else ""
        ax.text(x0 + cell, y0 + cell, f"{label}{de[i]:.1f}", ha="center", va="center",
                fontsize=7, color="black" if lum > 0.45 else "white")
    ax.set_axis_off()
    ax.set_title(f"{title}: top measured, bottom reference; {metric} mean {de.mean():.2f}, "
                 f"max {de.max():.2f}", fontsize=9)
    return _png(fig)


def shading_map(relative: np.ndarray, *, unit: str = "% of centre",
                title: str = "Shading") -> bytes:
    """A relative-illumination map (e.g. block means / centre) with contour lines."""
    data = np.asarray(relative, float)
    if data.ndim != 2 or min(data.shape) < 2:
        raise ValueError(f"relative must be a 2-D map of at least 2×2 blocks, got {data.shape}")
    fig, ax = _figure(6.4, 6.4 * data.shape[0] / data.shape[1] + 0.8)
    im = ax.imshow(data, cmap="viridis", interpolation="nearest")
    levels = np.linspace(np.nanmin(data), np.nanmax(data), 7)[1:-1]
    if np.ptp(levels) > 0:
        cs = ax.contour(data, levels=levels, colors="white", linewidths=0.7)
        ax.clabel(cs, fmt="%.3g", fontsize=7)
    fig.colorbar(im, ax=ax, label=unit, shrink=0.85)
    ax.set(title=f"{title}: min {np.nanmin(data):.3g}, max {np.nanmax(data):.3g} {unit}",
           xlabel="block column", ylabel="block row")
    return _png(fig)


def shading_grid_map(luminance_pct: np.ndarray,
                     colour_deviation_pct: Mapping[str, np.ndarray] | None = None, *,
                     title: str = "ISO 17957 shading grid") -> bytes:
    """Heat maps of a shading grid with each cell's figure written in it: luminance (% of the
    centre cell) and, per colour ratio, the deviation from the centre cell (%, on a diverging
    scale symmetric about 0, so a cast towards red or blue reads at a glance)."""
    lum = np.asarray(luminance_pct, float)
    if lum.ndim != 2 or min(lum.shape) < 2:
        raise ValueError(f"luminance_pct must be a 2-D grid of at least 2×2 cells, got "
                         f"{lum.shape}")
    panels: list[tuple[str, np.ndarray]] = [("luminance [% of centre]", lum)]
    for name, grid in (colour_deviation_pct or {}).items():
        g = np.asarray(grid, float)
        if g.shape != lum.shape:
            raise ValueError(f"colour grid {name!r} has shape {g.shape}, luminance {lum.shape}")
        panels.append((f"{name} deviation [%]", g))
    rows, cols = lum.shape
    side = 4.6
    fig = Figure(figsize=(side * len(panels), side * rows / cols + 1.2), dpi=DPI,
                 layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    size = max(4.0, min(9.0, 70.0 / max(rows, cols)))
    for ax, (label, data) in zip(axes, panels, strict=True):
        if data is lum:
            im = ax.imshow(data, cmap="viridis", interpolation="nearest")
            fmt, mid = "{:.0f}", float(np.nanmean(data))
        else:
            lim = max(float(np.nanmax(np.abs(data))), 1e-9)
            im = ax.imshow(data, cmap="RdBu_r", vmin=-lim, vmax=lim, interpolation="nearest")
            fmt, mid = "{:+.1f}", 0.0
        span = float(np.nanmax(np.abs(data - mid))) or 1.0
        for (r, c), v in np.ndenumerate(data):
            dark = data is lum and v < mid
            ax.text(c, r, fmt.format(v), ha="center", va="center", fontsize=size,
                    color="white" if dark or abs(v - mid) > 0.7 * span else "black")
        fig.colorbar(im, ax=ax, shrink=0.8)
        ax.set(title=f"{label}\nmin {np.nanmin(data):.3g}, max {np.nanmax(data):.3g}",
               xlabel="cell column", ylabel="cell row")
        ax.title.set_fontsize(9)
    fig.suptitle(title)
    return _png(fig)


__all__ = ["colorchecker", "defect_map", "focus_sweep", "linearity_residuals", "mtf_curves",
           "photon_transfer", "shading_grid_map", "shading_map", "snr_curve"]
