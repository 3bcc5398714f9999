using RsCapRet.Core;
using RsCapRet.Raster.Gdal;

namespace RsCapRet.Raster;

/// <summary>One entry of a band's colour table as RGB, with its alpha (0: transparent).</summary>
public readonly record struct PaletteEntry(byte R, byte G, byte B, byte A);

/// <summary>
/// A paletted band read as colours. Indices are never resampled (the mean of two indices is a third, unrelated entry;
/// GDAL itself falls back to nearest on paletted bands): a reduced window is read at <see cref="Supersampling"/>²
/// nearest samples per output pixel (fewer for a very large output), each looked up, and the colours averaged; an
/// enlarged one repeats its pixels.
/// </summary>
internal static class PaletteReads
{
    /// <summary>Samples per output pixel side at most.</summary>
    public const int Supersampling = 8;
    /// <summary>Indices held at once (64 MB): a large output is sampled more thinly rather than allocating more.</summary>
    public const long MaxSamples = 16_000_000;

    /// <summary>
    /// Reads <paramref name="window"/> of <paramref name="band"/> into <paramref name="rgb"/> (interleaved, outW x outH x 3).
    /// A sample whose index lies outside the table, or (with <paramref name="transparentIsMissing"/>) whose entry is
    /// transparent, is left out of its pixel's mean; a pixel with none left is black and, when <paramref name="valid"/>
    /// is given, marked invalid there.
    /// </summary>
    public static void Read(RasterDataset ds, int band, IReadOnlyList<PaletteEntry> table, PixelWindow window, int outW, int outH,
        Span<byte> rgb, Span<bool> valid, bool transparentIsMissing, CancellationToken ct)
    {
        // Reduced by any ratio, 1.37 included: k x k nearest samples per output pixel spread over the source pixels under
        // it in about their shares (reading only whole multiples would fall back to nearest below a ratio of 2).
        var reduced = window.Width > outW || window.Height > outH;
        var k = reduced ? Math.Max(1, Math.Min(Supersampling, (int)Math.Sqrt(MaxSamples / ((double)outW * outH)))) : 1;
        int sw = outW * k, sh = outH * k;
        var indices = new int[sw * sh];
        ds.Read(band, window, indices.AsSpan(), sw, sh, ResampleAlgorithm.Nearest, ct: ct);
        for (var y = 0; y < outH; y++)
            for (var x = 0; x < outW; x++)
            {
                int r = 0, g = 0, b = 0, n = 0;
                for (var dy = 0; dy < k; dy++)
                    for (var dx = 0; dx < k; dx++)
                    {
                        var i = indices[(y * k + dy) * sw + x * k + dx];
                        if (i < 0 || i >= table.Count || (transparentIsMissing && table[i].A == 0)) continue;
                        r += table[i].R; g += table[i].G; b += table[i].B; n++;
                    }
                var o = (y * outW + x) * 3;
                if (n == 0)
                {
                    rgb[o] = rgb[o + 1] = rgb[o + 2] = 0;
                    if (!valid.IsEmpty) valid[y * outW + x] = false;
                    continue;
                }
                rgb[o] = (byte)((r + n / 2) / n);
                rgb[o + 1] = (byte)((g + n / 2) / n);
                rgb[o + 2] = (byte)((b + n / 2) / n);
            }
    }
}
