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
    /// and dataset metadata items (e.g. TIFFTAG_DATETIME); <paramref name="configureBand"/> sets anything else on each band.
    /// </summary>
    public static unsafe void WriteGeoTiff<T>(string path, int width, int height, IReadOnlyList<T[]> bands,
        double[]? geoTransform = null, int? epsg = null, double? nodata = null,
        IReadOnlyList<ColorInterpretation>? colorInterpretations = null, string[]? creationOptions = null,
        IReadOnlyDictionary<string, string>? metadata = null, string? crsWkt = null, Action<IntPtr>? configureBand = null) where T : unmanaged
    {
        if (epsg is not null && crsWkt is not null) throw new ArgumentException("Give the CRS as an EPSG code or as WKT, not both.");
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
        if (crsWkt is not null) GdalRuntime.Check(GdalNative.GDALSetProjection(handle, crsWkt), path, "setting the CRS");
        foreach (var (key, value) in metadata ?? new Dictionary<string, string>())
            GdalRuntime.Check(GdalNative.GDALSetMetadataItem(handle.DangerousGetHandle(), key, value, null), path, $"setting metadata {key}");
        for (var i = 0; i < bands.Count; i++)
        {
            if (bands[i].Length != width * height) throw new ArgumentException($"Band {i + 1} has {bands[i].Length} values; {width * height} expected.");
            var band = GdalNative.GDALGetRasterBand(handle, i + 1);
            if (nodata is { } nd) _ = GdalNative.GDALSetRasterNoDataValue(band, nd);
            if (colorInterpretations != null) _ = GdalNative.GDALSetRasterColorInterpretation(band, (int)colorInterpretations[i]);
            configureBand?.Invoke(band);
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

    /// <summary>
    /// A one-band Byte GeoTIFF of class indices (a land-use map): <paramref name="classes"/> row-major, values
    /// 0..labels-1, <paramref name="nodata"/> where there is no class. The band carries a colour table (one entry per
    /// label, the nodata entry transparent), the label names as GDAL category names (what QGIS shows in its legend)
    /// and as metadata CLASS_0, CLASS_1, ...; the CRS is given as WKT, since a scene's CRS need not have an EPSG code.
    /// </summary>
    public static void WriteClassMap(string path, int width, int height, byte[] classes, double[] geoTransform, string? crsWkt,
        IReadOnlyList<string> labels, IReadOnlyList<(byte R, byte G, byte B)> colours, byte nodata = 255,
        IReadOnlyDictionary<string, string>? metadata = null)
    {
        if (labels.Count == 0 || labels.Count > nodata) throw new ArgumentException($"A class map holds 1..{nodata} labels, got {labels.Count}.");
        if (colours.Count != labels.Count) throw new ArgumentException($"{labels.Count} labels but {colours.Count} colours.");
        if (classes.Length != width * height) throw new ArgumentException($"The class grid has {classes.Length} cells; {width * height} expected.");
        foreach (var c in classes)
            if (c != nodata && c >= labels.Count) throw new ArgumentException($"Class {c} is not a label index (0..{labels.Count - 1}) nor nodata ({nodata}).");
        var items = new Dictionary<string, string>(metadata ?? new Dictionary<string, string>());
        for (var i = 0; i < labels.Count; i++) items[$"CLASS_{i}"] = labels[i];
        WriteGeoTiff(path, width, height, [classes], geoTransform, nodata: nodata, metadata: items, crsWkt: crsWkt,
            configureBand: band =>
            {
                GdalNative.GDALSetDescription(band, "class");
                var table = GdalNative.GDALCreateColorTable(GdalNative.GPI_RGB);
                try
                {
                    for (var i = 0; i <= nodata; i++)
                    {
                        var entry = i < labels.Count
                            ? new GdalNative.ColorEntry { C1 = colours[i].R, C2 = colours[i].G, C3 = colours[i].B, C4 = 255 }
                            : new GdalNative.ColorEntry();   // unused entries and nodata: transparent black
                        GdalNative.GDALSetColorEntry(table, i, entry);
                    }
                    GdalRuntime.Check(GdalNative.GDALSetRasterColorTable(band, table), path, "setting the colour table");
                }
                finally { GdalNative.GDALDestroyColorTable(table); }
                var names = StringList(Enumerable.Range(0, labels.Count).Select(i => labels[i]).ToArray());
                try { GdalRuntime.Check(GdalNative.GDALSetRasterCategoryNames(band, names), path, "setting the category names"); }
                finally { FreeStringList(names); }
            });
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
