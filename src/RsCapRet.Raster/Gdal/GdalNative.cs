using System.Reflection;
using System.Runtime.InteropServices;

namespace RsCapRet.Raster.Gdal;

/// <summary>
/// The GDAL C API functions this project uses, bound to the system libgdal (Debian 12: libgdal.so.32).
/// Nothing outside RsCapRet.Raster calls GDAL.
/// </summary>
internal static partial class GdalNative
{
    private const string Lib = "gdal";

    // Names tried in order; RSCAPRET_GDAL_LIBRARY overrides (e.g. another GDAL build).
    private static readonly string[] Candidates =
        ["libgdal.so.32", "libgdal.so.36", "libgdal.so.34", "libgdal.so.33", "libgdal.so.35", "libgdal.so", "libgdal.dylib", "gdal.dll"];

    static GdalNative() => NativeLibrary.SetDllImportResolver(typeof(GdalNative).Assembly, Resolve);

    /// <summary>The loaded libgdal (set on the first call into GDAL).</summary>
    public static IntPtr LibraryHandle { get; private set; }

    private static IntPtr Resolve(string name, Assembly assembly, DllImportSearchPath? path)
    {
        if (name != Lib) return IntPtr.Zero;
        if (LibraryHandle != IntPtr.Zero) return LibraryHandle;
        if (Core.Configuration.EnvironmentSettings.Load<RasterOptions>().GdalLibrary is { } over) return LibraryHandle = NativeLibrary.Load(over);
        foreach (var candidate in Candidates)
            if (NativeLibrary.TryLoad(candidate, out var handle)) return LibraryHandle = handle;
        throw new DllNotFoundException(
            "GDAL is not installed: no libgdal shared library found (tried " + string.Join(", ", Candidates) +
            "). On Debian 12 install it with `apt-get install libgdal32 gdal-bin` (scripts/bootstrap.sh does), " +
            "or set RSCAPRET_GDAL_LIBRARY to the library's path.");
    }

    public const uint OF_RASTER = 0x02;
    public const uint OF_READONLY = 0x00;
    public const uint OF_UPDATE = 0x01;
    public const uint OF_VERBOSE_ERROR = 0x40;

    public const int GF_Read = 0;
    public const int GF_Write = 1;

    public const int CE_None = 0;
    public const int CE_Failure = 3;

    public const int GMF_ALL_VALID = 0x01;
    public const int GMF_PER_DATASET = 0x02;
    public const int GMF_ALPHA = 0x04;
    public const int GMF_NODATA = 0x08;

    public const int OAMS_TRADITIONAL_GIS_ORDER = 0;

    [StructLayout(LayoutKind.Sequential)]
    public struct RasterIOExtraArg
    {
        public int Version;            // RASTERIO_EXTRA_ARG_CURRENT_VERSION = 1
        public int ResampleAlg;        // GDALRIOResampleAlg
        public IntPtr Progress;
        public IntPtr ProgressData;
        public int FloatingPointWindowValidity;
        public double XOff, YOff, XSize, YSize;

        public static RasterIOExtraArg Create(ResampleAlgorithm alg) => new() { Version = 1, ResampleAlg = (int)alg };
    }

    // --- library, errors --------------------------------------------------------------------------------------
    [LibraryImport(Lib)] public static partial void GDALAllRegister();
    [LibraryImport(Lib)] public static partial IntPtr CPLSetErrorHandler(IntPtr handler);
    [LibraryImport(Lib)] public static partial void CPLErrorReset();
    [LibraryImport(Lib)] public static partial IntPtr CPLGetLastErrorMsg();
    [LibraryImport(Lib)] public static partial int CPLGetLastErrorType();
    [LibraryImport(Lib)] public static partial void VSIFree(IntPtr p);
    [LibraryImport(Lib, StringMarshalling = StringMarshalling.Utf8)] public static partial IntPtr GDALVersionInfo(string request);
    [LibraryImport(Lib, StringMarshalling = StringMarshalling.Utf8)]
    public static partial IntPtr CPLSetConfigOption(string key, string? value);

    // --- in-memory files (/vsimem/) ----------------------------------------------------------------------------
    [LibraryImport(Lib, StringMarshalling = StringMarshalling.Utf8)]
    public static partial IntPtr VSIFileFromMemBuffer(string path, IntPtr data, ulong length, int takeOwnership);
    [LibraryImport(Lib)] public static partial int VSIFCloseL(IntPtr file);
    [LibraryImport(Lib, StringMarshalling = StringMarshalling.Utf8)] public static partial int VSIUnlink(string path);

    // --- datasets ---------------------------------------------------------------------------------------------
    [LibraryImport(Lib, StringMarshalling = StringMarshalling.Utf8)]
    public static partial IntPtr GDALOpenEx(string path, uint flags, IntPtr allowedDrivers, IntPtr openOptions, IntPtr siblingFiles);
    [LibraryImport(Lib)] public static partial void GDALClose(IntPtr dataset);
    [LibraryImport(Lib)] public static partial int GDALGetRasterXSize(SafeDatasetHandle dataset);
    [LibraryImport(Lib)] public static partial int GDALGetRasterYSize(SafeDatasetHandle dataset);
    [LibraryImport(Lib)] public static partial int GDALGetRasterCount(SafeDatasetHandle dataset);
    [LibraryImport(Lib)] public static partial IntPtr GDALGetRasterBand(SafeDatasetHandle dataset, int band);
    [LibraryImport(Lib)] public static partial int GDALGetGeoTransform(SafeDatasetHandle dataset, [Out] double[] transform);
    [LibraryImport(Lib)] public static partial int GDALSetGeoTransform(SafeDatasetHandle dataset, [In] double[] transform);
    [LibraryImport(Lib)] public static partial IntPtr GDALGetSpatialRef(SafeDatasetHandle dataset);
    [LibraryImport(Lib, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int GDALSetProjection(SafeDatasetHandle dataset, string wkt);
    [LibraryImport(Lib, StringMarshalling = StringMarshalling.Utf8)]
    public static partial IntPtr GDALGetMetadataItem(IntPtr majorObject, string name, string? domain);
    [LibraryImport(Lib, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int GDALSetMetadataItem(IntPtr majorObject, string name, string value, string? domain);
    [LibraryImport(Lib)] public static partial IntPtr GDALGetDatasetDriver(SafeDatasetHandle dataset);
    [LibraryImport(Lib)] public static partial IntPtr GDALGetDriverShortName(IntPtr driver);
    [LibraryImport(Lib, StringMarshalling = StringMarshalling.Utf8)] public static partial IntPtr GDALGetDriverByName(string name);
    [LibraryImport(Lib, StringMarshalling = StringMarshalling.Utf8)]
    public static partial IntPtr GDALCreate(IntPtr driver, string path, int xSize, int ySize, int bands, int dataType, IntPtr options);

    // --- bands ------------------------------------------------------------------------------------------------
    [LibraryImport(Lib)] public static partial int GDALGetRasterDataType(IntPtr band);
    [LibraryImport(Lib)] public static partial IntPtr GDALGetDataTypeName(int dataType);
    [LibraryImport(Lib)] public static partial int GDALGetRasterColorInterpretation(IntPtr band);
    [LibraryImport(Lib)] public static partial int GDALSetRasterColorInterpretation(IntPtr band, int interp);
    [LibraryImport(Lib)] public static partial IntPtr GDALGetColorInterpretationName(int interp);
    [LibraryImport(Lib)] public static partial double GDALGetRasterNoDataValue(IntPtr band, out int hasNoData);
    [LibraryImport(Lib)] public static partial int GDALSetRasterNoDataValue(IntPtr band, double value);
    [LibraryImport(Lib)] public static partial int GDALGetMaskFlags(IntPtr band);
    [LibraryImport(Lib)] public static partial int GDALSetRasterColorTable(IntPtr band, IntPtr colorTable);
    [LibraryImport(Lib)] public static partial int GDALSetRasterCategoryNames(IntPtr band, IntPtr names);
    [LibraryImport(Lib, StringMarshalling = StringMarshalling.Utf8)] public static partial void GDALSetDescription(IntPtr majorObject, string description);

    // --- colour tables (palette bands) -------------------------------------------------------------------------
    public const int GPI_RGB = 1;

    /// <summary>GDALColorEntry: c1..c3 red, green, blue and c4 alpha for an RGB palette, 0..255.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct ColorEntry { public short C1, C2, C3, C4; }

    [LibraryImport(Lib)] public static partial IntPtr GDALCreateColorTable(int paletteInterpretation);
    [LibraryImport(Lib)] public static partial void GDALDestroyColorTable(IntPtr colorTable);
    [LibraryImport(Lib)] public static partial void GDALSetColorEntry(IntPtr colorTable, int index, in ColorEntry entry);
    /// <summary>The band's colour table, owned by the band (never destroyed by the caller); null for none.</summary>
    [LibraryImport(Lib)] public static partial IntPtr GDALGetRasterColorTable(IntPtr band);
    [LibraryImport(Lib)] public static partial int GDALGetColorEntryCount(IntPtr colorTable);
    /// <summary>Entry <paramref name="index"/> as RGB whatever the palette's interpretation (gray, CMYK, HLS); 0 when it fails.</summary>
    [LibraryImport(Lib)] public static partial int GDALGetColorEntryAsRGB(IntPtr colorTable, int index, out ColorEntry entry);
    [LibraryImport(Lib)] public static partial IntPtr GDALGetMaskBand(IntPtr band);
    [LibraryImport(Lib)] public static partial void GDALGetBlockSize(IntPtr band, out int xSize, out int ySize);
    /// <summary>The files a dataset reads (a string list to free with <see cref="CSLDestroy"/>; null for none).</summary>
    [LibraryImport(Lib)] public static partial IntPtr GDALGetFileList(SafeDatasetHandle dataset);
    [LibraryImport(Lib)] public static partial void CSLDestroy(IntPtr list);
    [LibraryImport(Lib)]
    public static unsafe partial int GDALRasterIOEx(IntPtr band, int rwFlag, int xOff, int yOff, int xSize, int ySize,
        void* buffer, int bufXSize, int bufYSize, int bufType, long pixelSpace, long lineSpace, ref RasterIOExtraArg extra);

    // --- spatial references -----------------------------------------------------------------------------------
    [LibraryImport(Lib, StringMarshalling = StringMarshalling.Utf8)] public static partial IntPtr OSRNewSpatialReference(string? wkt);
    [LibraryImport(Lib)] public static partial void OSRDestroySpatialReference(IntPtr srs);
    [LibraryImport(Lib)] public static partial IntPtr OSRClone(IntPtr srs);
    [LibraryImport(Lib)] public static partial int OSRImportFromEPSG(SafeSpatialReferenceHandle srs, int epsg);
    [LibraryImport(Lib)] public static partial void OSRSetAxisMappingStrategy(SafeSpatialReferenceHandle srs, int strategy);
    [LibraryImport(Lib)] public static partial int OSRExportToWkt(SafeSpatialReferenceHandle srs, out IntPtr wkt);
    [LibraryImport(Lib)] public static partial int OSRAutoIdentifyEPSG(SafeSpatialReferenceHandle srs);
    [LibraryImport(Lib)] public static partial int OSRIsGeographic(SafeSpatialReferenceHandle srs);
    [LibraryImport(Lib)] public static partial int OSRIsProjected(SafeSpatialReferenceHandle srs);
    /// <summary>Metres per linear unit of a projected CRS (1 for metres, 0.3048 for feet).</summary>
    [LibraryImport(Lib)] public static partial double OSRGetLinearUnits(SafeSpatialReferenceHandle srs, out IntPtr name);
    /// <summary>Radians per angular unit of a geographic CRS (π/180 for degrees).</summary>
    [LibraryImport(Lib)] public static partial double OSRGetAngularUnits(SafeSpatialReferenceHandle srs, out IntPtr name);
    [LibraryImport(Lib)] public static partial double OSRGetSemiMajor(SafeSpatialReferenceHandle srs, out int err);
    [LibraryImport(Lib)] public static partial double OSRGetInvFlattening(SafeSpatialReferenceHandle srs, out int err);
    [LibraryImport(Lib, StringMarshalling = StringMarshalling.Utf8)]
    public static partial IntPtr OSRGetAuthorityName(SafeSpatialReferenceHandle srs, string? targetKey);
    [LibraryImport(Lib, StringMarshalling = StringMarshalling.Utf8)]
    public static partial IntPtr OSRGetAuthorityCode(SafeSpatialReferenceHandle srs, string? targetKey);
    [LibraryImport(Lib)]
    public static partial IntPtr OCTNewCoordinateTransformation(SafeSpatialReferenceHandle source, SafeSpatialReferenceHandle target);
    [LibraryImport(Lib)] public static partial void OCTDestroyCoordinateTransformation(IntPtr transform);
    [LibraryImport(Lib)]
    public static partial int OCTTransformEx(SafeCoordinateTransformationHandle transform, int count, [In, Out] double[] x,
        [In, Out] double[] y, [In, Out] double[]? z, [Out] int[] success);
    [LibraryImport(Lib)]
    public static partial int OCTTransform(SafeCoordinateTransformationHandle transform, int count, [In, Out] double[] x,
        [In, Out] double[] y, [In, Out] double[]? z);

    public static string? Utf8(IntPtr p) => p == IntPtr.Zero ? null : Marshal.PtrToStringUTF8(p);
}

/// <summary>GDAL's RasterIO resampling algorithms (GDALRIOResampleAlg).</summary>
public enum ResampleAlgorithm { Nearest = 0, Bilinear = 1, Cubic = 2, CubicSpline = 3, Lanczos = 4, Average = 5, Mode = 6, Gauss = 7 }

/// <summary>GDAL pixel data types (GDALDataType).</summary>
public enum GdalDataType
{
    Unknown = 0, Byte = 1, UInt16 = 2, Int16 = 3, UInt32 = 4, Int32 = 5, Float32 = 6, Float64 = 7,
    CInt16 = 8, CInt32 = 9, CFloat32 = 10, CFloat64 = 11, UInt64 = 12, Int64 = 13, Int8 = 14
}

/// <summary>GDAL colour interpretations (GDALColorInterp), the ones band choice looks at.</summary>
public enum ColorInterpretation { Undefined = 0, Gray = 1, Palette = 2, Red = 3, Green = 4, Blue = 5, Alpha = 6 }

internal sealed class SafeDatasetHandle() : Microsoft.Win32.SafeHandles.SafeHandleZeroOrMinusOneIsInvalid(true)
{
    protected override bool ReleaseHandle() { GdalNative.GDALClose(handle); return true; }
}

internal sealed class SafeSpatialReferenceHandle() : Microsoft.Win32.SafeHandles.SafeHandleZeroOrMinusOneIsInvalid(true)
{
    protected override bool ReleaseHandle() { GdalNative.OSRDestroySpatialReference(handle); return true; }
}

internal sealed class SafeCoordinateTransformationHandle() : Microsoft.Win32.SafeHandles.SafeHandleZeroOrMinusOneIsInvalid(true)
{
    protected override bool ReleaseHandle() { GdalNative.OCTDestroyCoordinateTransformation(handle); return true; }
}
