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

    /// <summary>
    /// A paletted image (8-bit PNGs from web optimisers, GIF-like TIFFs) through its colour table, the colours of a
    /// reduced image averaged (<see cref="PaletteReads"/>). Entries' alpha is ignored, as the alpha band of an RGBA image is.
    /// </summary>
    private static RgbImage ReadPaletted(RasterDataset ds, RasterBandInfo band, string path, int w, int h, CancellationToken ct)
    {
        // Named as the caller names it: an upload's dataset path is an internal /vsimem/ one.
        var table = ds.ColorTable(band.Index) is { Count: > 0 } t ? t
            : throw new RasterException(path, $"band {band.Index} is paletted but has no colour table");
        var image = RgbImage.Create(w, h);
        PaletteReads.Read(ds, band.Index, table, new PixelWindow(0, 0, ds.Width, ds.Height), w, h, image.Pixels, [], transparentIsMissing: false, ct);
        return image;
    }
}
