using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using RsCapRet.Core;
using RsCapRet.Raster.Gdal;

namespace RsCapRet.Raster;

/// <summary>One band as GDAL describes it (1-based index).</summary>
public sealed record RasterBandInfo(int Index, GdalDataType DataType, ColorInterpretation ColorInterpretation,
    string ColorInterpretationName, double? NoData, int MaskFlags)
{
    public bool IsAlpha => ColorInterpretation == ColorInterpretation.Alpha;
    /// <summary>True when the band has a real mask (a per-dataset mask or alpha), not just "all valid" or nodata.</summary>
    public bool HasMask => (MaskFlags & (GdalNative.GMF_ALL_VALID | GdalNative.GMF_NODATA)) == 0;
}

/// <summary>A coordinate reference system: WKT, and the EPSG code where GDAL can identify one.</summary>
public sealed record CrsInfo(string Wkt, int? Epsg)
{
    /// <summary>Whether coordinates are angles (longitude, latitude) rather than lengths.</summary>
    public bool IsGeographic { get; init; }
    /// <summary>Metres per coordinate unit of a projected CRS (0.3048 for international feet); null when not known.</summary>
    public double? MetresPerUnit { get; init; }
    /// <summary>Radians per coordinate unit of a geographic CRS (π/180 for degrees).</summary>
    public double? RadiansPerUnit { get; init; }
    /// <summary>The ellipsoid's semi-major axis (metres) and inverse flattening (0 for a sphere), for a geographic CRS.</summary>
    public (double SemiMajor, double InverseFlattening)? Ellipsoid { get; init; }
}

/// <summary>
/// A raster file opened read-only through GDAL: size, bands, geotransform, CRS and windowed reads.
/// Not thread-safe (GDAL dataset handles are not); open one per worker.
/// </summary>
public sealed class RasterDataset : IDisposable
{
    private readonly SafeDatasetHandle _handle;

    public string Path { get; }
    public int Width { get; }
    public int Height { get; }
    public IReadOnlyList<RasterBandInfo> Bands { get; }
    /// <summary>GDAL's affine geotransform (x0, dx/dcol, dx/drow, y0, dy/dcol, dy/drow), or null when the file has none.</summary>
    public double[]? GeoTransform { get; }
    public CrsInfo? Crs { get; }

    /// <summary>Ground sample distance along x in CRS units per pixel (1 without a geotransform: pixel coordinates).</summary>
    public double PixelSize => GeoTransform is { } gt ? Math.Sqrt(gt[1] * gt[1] + gt[4] * gt[4]) : 1;

    /// <summary>
    /// Ground sample distance in metres per pixel: a projected CRS's pixel size times its unit (feet become metres); a
    /// geographic CRS's angles measured on its ellipsoid at the scene's centre latitude (the side of a square of the
    /// pixel's ground area there, as a degree of longitude is shorter than one of latitude). Null without a CRS, a
    /// geotransform or units GDAL knows: the pixel size is then in the file's own units.
    /// </summary>
    public double? MetresPerPixel => PixelMetres is var (column, row) ? Math.Sqrt(column * row) : null;

    /// <summary>A pixel's ground size in metres along a column step and a row step (see <see cref="MetresPerPixel"/>).</summary>
    public (double Column, double Row)? PixelMetres => GroundSampleDistance.PixelMetres(GeoTransform, Crs, Width, Height);
    public string DriverName { get; }

    private RasterDataset(string path, SafeDatasetHandle handle)
    {
        Path = path;
        _handle = handle;
        Width = GdalNative.GDALGetRasterXSize(handle);
        Height = GdalNative.GDALGetRasterYSize(handle);
        DriverName = GdalNative.Utf8(GdalNative.GDALGetDriverShortName(GdalNative.GDALGetDatasetDriver(handle))) ?? "?";
        var bands = new List<RasterBandInfo>();
        for (var i = 1; i <= GdalNative.GDALGetRasterCount(handle); i++)
        {
            var band = GdalNative.GDALGetRasterBand(handle, i);
            var nodata = GdalNative.GDALGetRasterNoDataValue(band, out var hasNoData);
            var ci = GdalNative.GDALGetRasterColorInterpretation(band);
            bands.Add(new RasterBandInfo(i, (GdalDataType)GdalNative.GDALGetRasterDataType(band),
                Enum.IsDefined(typeof(ColorInterpretation), ci) ? (ColorInterpretation)ci : ColorInterpretation.Undefined,
                GdalNative.Utf8(GdalNative.GDALGetColorInterpretationName(ci)) ?? "Undefined",
                hasNoData != 0 ? nodata : null, GdalNative.GDALGetMaskFlags(band)));
        }
        Bands = bands;
        var gt = new double[6];
        GeoTransform = GdalNative.GDALGetGeoTransform(handle, gt) == GdalNative.CE_None ? gt : null;
        Crs = ReadCrs(handle);
    }

    /// <summary>Opens <paramref name="path"/> read-only; clear errors for a missing file or one GDAL can't read as a raster.</summary>
    public static RasterDataset Open(string path) => Open(path, null, path);

    /// <summary>
    /// Opens with only the named GDAL drivers allowed (e.g. PNG, JPEG, GTiff, WEBP for untrusted bytes), naming the
    /// file <paramref name="displayName"/> in errors.
    /// </summary>
    public static RasterDataset Open(string path, IReadOnlyList<string>? allowedDrivers, string displayName)
    {
        var drivers = IntPtr.Zero;
        var strings = new List<IntPtr>();
        try
        {
            if (allowedDrivers is not null)
            {
                drivers = Marshal.AllocHGlobal(IntPtr.Size * (allowedDrivers.Count + 1));
                for (var i = 0; i < allowedDrivers.Count; i++)
                {
                    strings.Add(Marshal.StringToCoTaskMemUTF8(allowedDrivers[i]));
                    Marshal.WriteIntPtr(drivers, i * IntPtr.Size, strings[^1]);
                }
                Marshal.WriteIntPtr(drivers, allowedDrivers.Count * IntPtr.Size, IntPtr.Zero);
            }
            return OpenWith(path, drivers, displayName);
        }
        finally
        {
            foreach (var s in strings) Marshal.FreeCoTaskMem(s);
            if (drivers != IntPtr.Zero) Marshal.FreeHGlobal(drivers);
        }
    }

    /// <summary>Why a path cannot be read as a file — a folder, a link leading nowhere (or in a loop), nothing — or null for a file.</summary>
    public static string? WhyNotAFile(string fullPath)
    {
        if (Directory.Exists(fullPath)) return "is a directory, not a raster file";
        var info = new FileInfo(fullPath);
        if (info.LinkTarget is not null)
        {
            const string nowhere = "is a symbolic link that leads to no file (a loop or a missing target)";
            try { if (info.ResolveLinkTarget(returnFinalTarget: true) is not FileInfo { Exists: true }) return nowhere; }
            catch (IOException) { return nowhere; }
        }
        return info.Exists ? null : "does not exist";
    }

    private static RasterDataset OpenWith(string path, IntPtr allowedDrivers, string displayName)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        var full = System.IO.Path.GetFullPath(path);
        if (!path.StartsWith("/vsi", StringComparison.Ordinal) && WhyNotAFile(full) is { } problem)
            throw new RasterException(path, problem);
        GdalRuntime.EnsureInitialised();
        GdalNative.CPLErrorReset();
        var raw = GdalNative.GDALOpenEx(path.StartsWith("/vsi", StringComparison.Ordinal) ? path : full,
            GdalNative.OF_RASTER | GdalNative.OF_READONLY | GdalNative.OF_VERBOSE_ERROR, allowedDrivers, IntPtr.Zero, IntPtr.Zero);
        if (raw == IntPtr.Zero)
            throw new RasterException(displayName, "GDAL cannot open it as a raster: " + GdalRuntime.LastError("unrecognised format or unreadable file").Replace(path, displayName));
        var handle = new SafeDatasetHandle();
        Marshal.InitHandle(handle, raw);
        try
        {
            var ds = new RasterDataset(path, handle);
            if (ds.Width <= 0 || ds.Height <= 0 || ds.Bands.Count == 0)
                throw new RasterException(displayName, $"has no raster data ({ds.Width}x{ds.Height}, {ds.Bands.Count} bands)");
            return ds;
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Reads <paramref name="window"/> of band <paramref name="band"/> (1-based) into <paramref name="buffer"/> at
    /// <paramref name="bufWidth"/> x <paramref name="bufHeight"/> (a different size resamples through GDAL), converting
    /// to the buffer's element type. <paramref name="pixelStride"/>/<paramref name="lineStride"/> (in elements) allow
    /// writing straight into an interleaved buffer. A cancelled <paramref name="ct"/> stops GDAL mid-read (its
    /// progress callback, called as blocks are decoded) with <see cref="OperationCanceledException"/>.
    /// </summary>
    public unsafe void Read<T>(int band, PixelWindow window, Span<T> buffer, int bufWidth, int bufHeight,
        ResampleAlgorithm resample = ResampleAlgorithm.Nearest, int pixelStride = 1, int lineStride = 0, CancellationToken ct = default) where T : unmanaged
    {
        if (band < 1 || band > Bands.Count) throw new ArgumentOutOfRangeException(nameof(band), band, $"{Path} has bands 1..{Bands.Count}.");
        if (window.X < 0 || window.Y < 0 || window.Width <= 0 || window.Height <= 0 || window.X + window.Width > Width || window.Y + window.Height > Height)
            throw new ArgumentOutOfRangeException(nameof(window), window, $"Window lies outside {Path} ({Width}x{Height}).");
        if (lineStride == 0) lineStride = bufWidth * pixelStride;
        var needed = (long)(bufHeight - 1) * lineStride + (long)(bufWidth - 1) * pixelStride + 1;
        if (buffer.Length < needed) throw new ArgumentException($"Buffer holds {buffer.Length} elements; {needed} needed.", nameof(buffer));
        ct.ThrowIfCancellationRequested();
        var extra = GdalNative.RasterIOExtraArg.Create(resample);
        var cancellation = ct.CanBeCanceled ? GCHandle.Alloc(new StrongBox<CancellationToken>(ct)) : default;
        if (ct.CanBeCanceled)
        {
            extra.Progress = (IntPtr)(delegate* unmanaged<double, IntPtr, IntPtr, int>)&ContinueUnlessCancelled;
            extra.ProgressData = GCHandle.ToIntPtr(cancellation);
        }
        GdalNative.CPLErrorReset();
        try
        {
            fixed (T* p = buffer)
            {
                var err = GdalNative.GDALRasterIOEx(GdalNative.GDALGetRasterBand(_handle, band), GdalNative.GF_Read,
                    window.X, window.Y, window.Width, window.Height, p, bufWidth, bufHeight, (int)DataTypeOf<T>(),
                    (long)pixelStride * sizeof(T), (long)lineStride * sizeof(T), ref extra);
                ct.ThrowIfCancellationRequested();
                GdalRuntime.Check(err, Path, $"reading band {band} window {window}");
            }
        }
        finally
        {
            if (cancellation.IsAllocated) cancellation.Free();
        }
    }

    /// <summary>GDAL's progress callback for <see cref="Read{T}"/>: 0 (stop) once the read's token is cancelled.</summary>
    [UnmanagedCallersOnly]
    private static int ContinueUnlessCancelled(double complete, IntPtr message, IntPtr data) =>
        GCHandle.FromIntPtr(data).Target is StrongBox<CancellationToken> { Value.IsCancellationRequested: true } ? 0 : 1;

    /// <summary>Band <paramref name="band"/>'s colour table as RGB entries with alpha (index = pixel value); null when it has none.</summary>
    public IReadOnlyList<PaletteEntry>? ColorTable(int band)
    {
        if (band < 1 || band > Bands.Count) throw new ArgumentOutOfRangeException(nameof(band), band, $"{Path} has bands 1..{Bands.Count}.");
        var table = GdalNative.GDALGetRasterColorTable(GdalNative.GDALGetRasterBand(_handle, band));
        if (table == IntPtr.Zero) return null;
        static byte Byte(short v) => (byte)Math.Clamp((int)v, 0, 255);
        var entries = new PaletteEntry[GdalNative.GDALGetColorEntryCount(table)];
        for (var i = 0; i < entries.Length; i++)
            if (GdalNative.GDALGetColorEntryAsRGB(table, i, out var e) != 0) entries[i] = new PaletteEntry(Byte(e.C1), Byte(e.C2), Byte(e.C3), Byte(e.C4));
        return entries;
    }

    /// <summary>
    /// Reads the GDAL mask of band <paramref name="band"/> (0 = invalid, 255 = valid) for a window; a cancelled
    /// <paramref name="ct"/> stops it like <see cref="Read{T}"/>.
    /// </summary>
    public unsafe void ReadMask(int band, PixelWindow window, Span<byte> buffer, int bufWidth, int bufHeight, CancellationToken ct = default)
    {
        ct.ThrowIfCancellationRequested();
        var mask = GdalNative.GDALGetMaskBand(GdalNative.GDALGetRasterBand(_handle, band));
        var extra = GdalNative.RasterIOExtraArg.Create(ResampleAlgorithm.Nearest);
        var cancellation = ct.CanBeCanceled ? GCHandle.Alloc(new StrongBox<CancellationToken>(ct)) : default;
        if (ct.CanBeCanceled)
        {
            extra.Progress = (IntPtr)(delegate* unmanaged<double, IntPtr, IntPtr, int>)&ContinueUnlessCancelled;
            extra.ProgressData = GCHandle.ToIntPtr(cancellation);
        }
        GdalNative.CPLErrorReset();
        try
        {
            fixed (byte* p = buffer)
            {
                var err = GdalNative.GDALRasterIOEx(mask, GdalNative.GF_Read, window.X, window.Y, window.Width, window.Height,
                    p, bufWidth, bufHeight, (int)GdalDataType.Byte, 1, bufWidth, ref extra);
                ct.ThrowIfCancellationRequested();
                GdalRuntime.Check(err, Path, $"reading the mask of band {band}");
            }
        }
        finally
        {
            if (cancellation.IsAllocated) cancellation.Free();
        }
    }

    /// <summary>GDAL's natural block of band <paramref name="band"/>: what it decodes at once (a strip or a tile).</summary>
    public (int Width, int Height) BlockSize(int band)
    {
        GdalNative.GDALGetBlockSize(GdalNative.GDALGetRasterBand(_handle, band), out var w, out var h);
        return (Math.Max(1, w), Math.Max(1, h));
    }

    /// <summary>
    /// Whether the file stores its bands interleaved by pixel (GDAL's IMAGE_STRUCTURE INTERLEAVE=PIXEL), so that
    /// decoding a block of one band decodes that block of every band.
    /// </summary>
    public bool InterleavedByPixel => Bands.Count > 1 &&
        string.Equals(Metadata("INTERLEAVE", "IMAGE_STRUCTURE"), "PIXEL", StringComparison.OrdinalIgnoreCase);

    /// <summary>The files GDAL reads for this dataset (the file itself, sidecars, a VRT's sources); empty when it does not say.</summary>
    public IReadOnlyList<string> Files
    {
        get
        {
            var list = GdalNative.GDALGetFileList(_handle);
            if (list == IntPtr.Zero) return [];
            try
            {
                var files = new List<string>();
                for (var i = 0; Marshal.ReadIntPtr(list, i * IntPtr.Size) is var item && item != IntPtr.Zero; i++)
                    if (GdalNative.Utf8(item) is { } f) files.Add(f);
                return files;
            }
            finally { GdalNative.CSLDestroy(list); }
        }
    }

    /// <summary>A dataset-level metadata item (e.g. TIFFTAG_DATETIME), or null.</summary>
    public string? Metadata(string name, string? domain = null) =>
        GdalNative.Utf8(GdalNative.GDALGetMetadataItem(_handle.DangerousGetHandle(), name, domain));

    internal SafeDatasetHandle Handle => _handle;

    public void Dispose() => _handle.Dispose();

    internal static GdalDataType DataTypeOf<T>() where T : unmanaged =>
        typeof(T) == typeof(byte) ? GdalDataType.Byte :
        typeof(T) == typeof(ushort) ? GdalDataType.UInt16 :
        typeof(T) == typeof(short) ? GdalDataType.Int16 :
        typeof(T) == typeof(uint) ? GdalDataType.UInt32 :
        typeof(T) == typeof(int) ? GdalDataType.Int32 :
        typeof(T) == typeof(float) ? GdalDataType.Float32 :
        typeof(T) == typeof(double) ? GdalDataType.Float64 :
        throw new NotSupportedException($"No GDAL data type for {typeof(T).Name}.");

    private static CrsInfo? ReadCrs(SafeDatasetHandle handle)
    {
        var borrowed = GdalNative.GDALGetSpatialRef(handle);
        if (borrowed == IntPtr.Zero) return null;
        using var srs = SpatialReference.CloneOf(borrowed);
        return srs.Describe();
    }
}

/// <summary>How many metres a pixel spans on the ground, from a geotransform and its CRS's units.</summary>
public static class GroundSampleDistance
{
    /// <summary>
    /// A pixel's ground size in metres along a column step and along a row step: a projected CRS's lengths times its
    /// unit; a geographic CRS's angles on its ellipsoid at the raster's centre latitude. Null when the units are unknown.
    /// </summary>
    public static (double Column, double Row)? PixelMetres(double[]? gt, CrsInfo? crs, int width, int height)
    {
        if (gt is null || crs is null) return null;
        double perUnitX, perUnitY;
        if (crs.IsGeographic && crs.RadiansPerUnit is > 0 and var rad && crs.Ellipsoid is var (a, inverseFlattening) && a > 0)
        {
            var lat = (gt[3] + gt[4] * width / 2 + gt[5] * height / 2) * rad;
            if (!(Math.Abs(lat) < Math.PI / 2)) return null;
            var f = inverseFlattening > 0 ? 1 / inverseFlattening : 0;
            var e2 = f * (2 - f);
            var w = 1 - e2 * Math.Sin(lat) * Math.Sin(lat);
            perUnitX = a / Math.Sqrt(w) * Math.Cos(lat) * rad;        // a parallel's radius: prime vertical × cos φ
            perUnitY = a * (1 - e2) / Math.Pow(w, 1.5) * rad;         // the meridian's radius of curvature
        }
        else if (!crs.IsGeographic && crs.MetresPerUnit is > 0 and var metres)
            perUnitX = perUnitY = metres;
        else return null;
        var column = Math.Sqrt(Math.Pow(gt[1] * perUnitX, 2) + Math.Pow(gt[4] * perUnitY, 2));
        var row = Math.Sqrt(Math.Pow(gt[2] * perUnitX, 2) + Math.Pow(gt[5] * perUnitY, 2));
        return column is > 0 and < double.PositiveInfinity && row is > 0 and < double.PositiveInfinity ? (column, row) : null;
    }
}
