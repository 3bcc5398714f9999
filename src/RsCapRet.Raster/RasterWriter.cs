using System.Runtime.InteropServices;
using RsCapRet.Core;
using RsCapRet.Raster.Gdal;

namespace RsCapRet.Raster;

/// <summary>Writes GeoTIFFs (demo mosaics, test rasters) through GDAL's GTiff driver.</summary>
public static class RasterWriter
{
    /// <summary>
    /// Creates a GeoTIFF of <paramref name="bands"/> planes (each width*height values, row-major) of type
    /// <typeparamref name="T"/>, with an optional geotransform, CRS (EPSG code), nodata value, colour interpretations
    /// and dataset metadata items (e.g. TIFFTAG_DATETIME).
    /// </summary>
    public static unsafe void WriteGeoTiff<T>(string path, int width, int height, IReadOnlyList<T[]> bands,
        double[]? geoTransform = null, int? epsg = null, double? nodata = null,
        IReadOnlyList<ColorInterpretation>? colorInterpretations = null, string[]? creationOptions = null,
        IReadOnlyDictionary<string, string>? metadata = null) where T : unmanaged
    {
        GdalRuntime.EnsureInitialised();
        var driver = GdalNative.GDALGetDriverByName("GTiff");
        if (driver == IntPtr.Zero) throw new RasterException(path, "GDAL has no GTiff driver");
        var options = StringList(creationOptions ?? ["COMPRESS=DEFLATE", "TILED=YES"]);
        IntPtr raw;
        try
        {
            GdalNative.CPLErrorReset();
            raw = GdalNative.GDALCreate(driver, Path.GetFullPath(path), width, height, bands.Count, (int)RasterDataset.DataTypeOf<T>(), options);
        }
        finally { FreeStringList(options); }
        if (raw == IntPtr.Zero) throw new RasterException(path, "cannot be created: " + GdalRuntime.LastError("GDAL failed"));
        using var handle = new SafeDatasetHandle();
        Marshal.InitHandle(handle, raw);
        if (geoTransform != null) GdalRuntime.Check(GdalNative.GDALSetGeoTransform(handle, geoTransform), path, "setting the geotransform");
        if (epsg is { } code)
        {
            using var srs = SpatialReference.FromEpsg(code);
            GdalRuntime.Check(GdalNative.GDALSetProjection(handle, srs.ToWkt()), path, "setting the CRS");
        }
        foreach (var (key, value) in metadata ?? new Dictionary<string, string>())
            GdalRuntime.Check(GdalNative.GDALSetMetadataItem(handle.DangerousGetHandle(), key, value, null), path, $"setting metadata {key}");
        for (var i = 0; i < bands.Count; i++)
        {
            if (bands[i].Length != width * height) throw new ArgumentException($"Band {i + 1} has {bands[i].Length} values; {width * height} expected.");
            var band = GdalNative.GDALGetRasterBand(handle, i + 1);
            if (nodata is { } nd) GdalNative.GDALSetRasterNoDataValue(band, nd);
            if (colorInterpretations != null) GdalNative.GDALSetRasterColorInterpretation(band, (int)colorInterpretations[i]);
            var extra = GdalNative.RasterIOExtraArg.Create(ResampleAlgorithm.Nearest);
            fixed (T* p = bands[i])
                GdalRuntime.Check(GdalNative.GDALRasterIOEx(band, GdalNative.GF_Write, 0, 0, width, height, p, width, height,
                    (int)RasterDataset.DataTypeOf<T>(), sizeof(T), (long)width * sizeof(T), ref extra), path, $"writing band {i + 1}");
        }
    }

    /// <summary>Writes an RGB image as a 3-band Byte GeoTIFF (lossless, or JPEG-in-TIFF at <paramref name="jpegQuality"/>).</summary>
    public static void WriteRgb(string path, RgbImage image, double[]? geoTransform = null, int? epsg = null, int? jpegQuality = null)
    {
        var planes = Enumerable.Range(0, 3).Select(c =>
        {
            var plane = new byte[image.Width * image.Height];
            for (var k = 0; k < plane.Length; k++) plane[k] = image.Pixels[k * 3 + c];
            return plane;
        }).ToArray();
        WriteGeoTiff(path, image.Width, image.Height, planes, geoTransform, epsg,
            colorInterpretations: [ColorInterpretation.Red, ColorInterpretation.Green, ColorInterpretation.Blue],
            creationOptions: jpegQuality is { } q
                ? ["COMPRESS=JPEG", $"JPEG_QUALITY={q}", "PHOTOMETRIC=YCBCR", "TILED=YES"]
                : ["COMPRESS=DEFLATE", "TILED=YES", "PHOTOMETRIC=RGB"]);
    }

    private static IntPtr StringList(string[] items)
    {
        var list = Marshal.AllocHGlobal(IntPtr.Size * (items.Length + 1));
        for (var i = 0; i < items.Length; i++) Marshal.WriteIntPtr(list, i * IntPtr.Size, Marshal.StringToCoTaskMemUTF8(items[i]));
        Marshal.WriteIntPtr(list, items.Length * IntPtr.Size, IntPtr.Zero);
        return list;
    }

    private static void FreeStringList(IntPtr list)
    {
        for (var i = 0; ; i++)
        {
            var p = Marshal.ReadIntPtr(list, i * IntPtr.Size);
            if (p == IntPtr.Zero) break;
            Marshal.FreeCoTaskMem(p);
        }
        Marshal.FreeHGlobal(list);
    }
}
