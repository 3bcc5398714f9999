using System.Runtime.InteropServices;
using RsCapRet.Core;
using RsCapRet.Raster.Gdal;

namespace RsCapRet.Raster;

/// <summary>Ordinary images (JPEG, PNG, TIFF of captioning datasets) decoded through GDAL to 8-bit RGB.</summary>
public static class RasterImage
{
    /// <summary>
    /// Reads the whole image as RGB (1-band images replicated; paletted ones through their colour table; alpha ignored;
    /// no stretch for Byte data). With <paramref name="maxSide"/>, larger images are read reduced by GDAL (averaging) so the
    /// longer side fits it.
    /// </summary>
    public static RgbImage ReadRgb(string path, int? maxSide = null)
    {
        using var ds = RasterDataset.Open(path);
        return ReadRgb(ds, path, maxSide);
    }

    /// <summary>The only drivers untrusted bytes are opened with: plain image formats that cannot name other files.</summary>
    public static readonly IReadOnlyList<string> UploadDrivers = ["PNG", "JPEG", "GTiff", "WEBP"];

    /// <summary>
    /// Decodes untrusted image bytes (an HTTP upload): opened from memory (/vsimem/), never a path, with only
    /// <see cref="UploadDrivers"/> allowed (no VRT or other format that can point at files or URLs), and refused
    /// before any pixel is decoded when it declares more than <paramref name="maxPixels"/> pixels or more than
    /// <paramref name="maxBands"/> bands, whatever its file size. The decoding stops with
    /// <see cref="OperationCanceledException"/> when <paramref name="ct"/> is cancelled (the client hung up, the time
    /// budget ran out). Errors name the file <paramref name="displayName"/>.
    /// </summary>
    public static RgbImage ReadUploadedRgb(ReadOnlySpan<byte> bytes, long maxPixels, int maxSide, string displayName = "upload", int maxBands = 4,
        CancellationToken ct = default)
    {
        if (bytes.Length == 0) throw new RasterException(displayName, "is empty");
        GdalRuntime.EnsureInitialised();
        var vsiPath = $"/vsimem/rscapret-upload-{Guid.NewGuid():N}";
        var buffer = Marshal.AllocHGlobal(bytes.Length);
        try
        {
            unsafe { bytes.CopyTo(new Span<byte>((void*)buffer, bytes.Length)); }
            var file = GdalNative.VSIFileFromMemBuffer(vsiPath, buffer, (ulong)bytes.Length, 0);
            if (file == IntPtr.Zero) throw new RasterException(displayName, "could not be staged in memory for GDAL");
            _ = GdalNative.VSIFCloseL(file);
            RasterDataset ds;
            try { ds = RasterDataset.Open(vsiPath, UploadDrivers, displayName); }
            catch (RasterException e)
            {
                throw new RasterException(displayName, $"is not a PNG, JPEG, TIFF or WebP image ({e.Message.Replace(vsiPath, displayName)})", e);
            }
            using (ds)
            {
                if ((long)ds.Width * ds.Height > maxPixels)
                    throw new RasterException(displayName, $"declares {ds.Width}x{ds.Height} px ({(double)ds.Width * ds.Height / 1e6:0.#} MP), more than the limit of {maxPixels / 1e6:0.#} MP");
                if (ds.Bands.Count > maxBands)
                    throw new RasterException(displayName, $"declares {ds.Bands.Count} bands, more than the limit of {maxBands}");
                return ReadRgb(ds, displayName, maxSide, ct);
            }
        }
        finally
        {
            GdalNative.VSIUnlink(vsiPath);
            Marshal.FreeHGlobal(buffer);
        }
    }

    private static RgbImage ReadRgb(RasterDataset ds, string path, int? maxSide, CancellationToken ct = default)
    {
        var scale = maxSide is { } m && Math.Max(ds.Width, ds.Height) > m ? (double)m / Math.Max(ds.Width, ds.Height) : 1.0;
        int w = Math.Max(1, (int)Math.Round(ds.Width * scale)), h = Math.Max(1, (int)Math.Round(ds.Height * scale));
        if (ds.Bands.FirstOrDefault(b => !b.IsAlpha) is { ColorInterpretation: ColorInterpretation.Palette } palette)
            return ReadPaletted(ds, palette, path, w, h, ct);
        var (rgb, _) = SceneTiler.ChooseBands(ds, null);
        foreach (var b in rgb.Distinct())
            if (ds.Bands[b - 1].DataType != Gdal.GdalDataType.Byte)
                throw new RasterException(path, $"band {b} is {ds.Bands[b - 1].DataType}; images for the model must be 8-bit (use a scene ingest for other types)");
        var image = RgbImage.Create(w, h);
        var full = new PixelWindow(0, 0, ds.Width, ds.Height);
        // Reduced: GDAL averages the pixels under each output pixel (nearest would alias roofs and fields into noise).
        var resample = w < ds.Width || h < ds.Height ? ResampleAlgorithm.Average : ResampleAlgorithm.Nearest;
        for (var c = 0; c < 3; c++)
            ds.Read(rgb[c], full, image.Pixels.AsSpan(c), w, h, resample, pixelStride: 3, ct: ct);
        return image;
    }

    /// <summary>Pixels from one supersampled read at most per output pixel side when a paletted image is reduced.</summary>
    private const int PaletteSupersampling = 4;
    /// <summary>Indices held at once (64 MB): a large output is sampled more thinly rather than allocating more.</summary>
    private const long PaletteMaxSamples = 16_000_000;

    /// <summary>
    /// A paletted image (8-bit PNGs from web optimisers, GIF-like TIFFs) through its colour table. Indices are not
    /// resampled (averaging two indices gives a third, unrelated colour; GDAL itself falls back to nearest): they are
    /// read at up to <see cref="PaletteSupersampling"/>² samples per output pixel, looked up, and the colours averaged.
    /// Entries' alpha is ignored, as the alpha band of an RGBA image is.
    /// </summary>
    private static RgbImage ReadPaletted(RasterDataset ds, RasterBandInfo band, string path, int w, int h, CancellationToken ct)
    {
        var table = ds.ColorTable(band.Index) ?? throw new RasterException(path, $"band {band.Index} is paletted but has no colour table");
        var k = Math.Max(1, Math.Min(Math.Min(PaletteSupersampling, (int)Math.Sqrt(PaletteMaxSamples / ((double)w * h))),
            Math.Min(ds.Width / w, ds.Height / h)));
        int sw = w * k, sh = h * k;
        var indices = new int[sw * sh];
        ds.Read(band.Index, new PixelWindow(0, 0, ds.Width, ds.Height), indices.AsSpan(), sw, sh, ct: ct);
        var image = RgbImage.Create(w, h);
        for (var y = 0; y < h; y++)
            for (var x = 0; x < w; x++)
            {
                int r = 0, g = 0, b = 0;
                for (var dy = 0; dy < k; dy++)
                    for (var dx = 0; dx < k; dx++)
                    {
                        var i = indices[(y * k + dy) * sw + x * k + dx];
                        // A value beyond the table (a damaged file) shows black rather than failing the image.
                        if (i < 0 || i >= table.Count) continue;
                        r += table[i].R; g += table[i].G; b += table[i].B;
                    }
                var o = (y * w + x) * 3;
                int n = k * k;
                image.Pixels[o] = (byte)((r + n / 2) / n);
                image.Pixels[o + 1] = (byte)((g + n / 2) / n);
                image.Pixels[o + 2] = (byte)((b + n / 2) / n);
            }
        return image;
    }
}
