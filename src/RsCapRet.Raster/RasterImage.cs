using RsCapRet.Core;

namespace RsCapRet.Raster;

/// <summary>Ordinary images (JPEG, PNG, TIFF of captioning datasets) decoded through GDAL to 8-bit RGB.</summary>
public static class RasterImage
{
    /// <summary>
    /// Reads the whole image as RGB (1-band images replicated; alpha ignored; no stretch for Byte data). With
    /// <paramref name="maxSide"/>, larger images are read downsampled by GDAL so the longer side fits it.
    /// </summary>
    public static RgbImage ReadRgb(string path, int? maxSide = null)
    {
        using var ds = RasterDataset.Open(path);
        var (rgb, _) = SceneTiler.ChooseBands(ds, null);
        foreach (var b in rgb.Distinct())
            if (ds.Bands[b - 1].DataType != Gdal.GdalDataType.Byte)
                throw new RasterException(path, $"band {b} is {ds.Bands[b - 1].DataType}; images for the model must be 8-bit (use a scene ingest for other types)");
        var scale = maxSide is { } m && Math.Max(ds.Width, ds.Height) > m ? (double)m / Math.Max(ds.Width, ds.Height) : 1.0;
        int w = Math.Max(1, (int)Math.Round(ds.Width * scale)), h = Math.Max(1, (int)Math.Round(ds.Height * scale));
        var image = RgbImage.Create(w, h);
        var full = new PixelWindow(0, 0, ds.Width, ds.Height);
        for (var c = 0; c < 3; c++)
            ds.Read(rgb[c], full, image.Pixels.AsSpan(c), w, h, pixelStride: 3);
        return image;
    }
}
