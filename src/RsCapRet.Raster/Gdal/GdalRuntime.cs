using System.Runtime.InteropServices;

using RsCapRet.Raster;

namespace RsCapRet.Raster.Gdal;

/// <summary>GDAL initialisation and error reporting: GDAL's errors become exceptions naming the file.</summary>
internal static class GdalRuntime
{
    private static readonly Lazy<bool> Initialised = new(() =>
    {
        GdalNative.GDALAllRegister();
        // GDAL's block cache defaults to 5 % of RAM; tiling reads each block about once, so a modest cache keeps
        // ingestion memory small and flat. GDAL_CACHEMAX in the environment still wins.
        if (Environment.GetEnvironmentVariable("GDAL_CACHEMAX") is null) GdalNative.CPLSetConfigOption("GDAL_CACHEMAX", "128");
        // No network from GDAL unless the operator allows it (RSCAPRET_GDAL_NETWORK=1): a path or a VRT that names
        // /vsicurl/ or an http:// URL must not make the server send requests. /vsicurl/ only fetches files whose
        // extension is allowed, and every libcurl request would go through a proxy that does not exist.
        if (!Core.Configuration.EnvironmentSettings.Load<RasterOptions>().GdalNetwork)
        {
            GdalNative.CPLSetConfigOption("CPL_VSIL_CURL_ALLOWED_EXTENSIONS", ".rscapret-network-disabled");
            GdalNative.CPLSetConfigOption("GDAL_HTTP_PROXY", "127.0.0.1:9");
            GdalNative.CPLSetConfigOption("GDAL_HTTP_TIMEOUT", "1");
        }
        // Errors are read back with CPLGetLastErrorMsg and thrown; keep GDAL from also printing them to stderr.
        GdalNative.CPLSetErrorHandler(NativeLibrary.GetExport(GdalNative.LibraryHandle, "CPLQuietErrorHandler"));
        return true;
    });

    public static void EnsureInitialised() => _ = Initialised.Value;

    public static string Version => GdalNative.Utf8(GdalNative.GDALVersionInfo("RELEASE_NAME")) ?? "unknown";

    public static string LastError(string fallback)
    {
        var msg = GdalNative.Utf8(GdalNative.CPLGetLastErrorMsg());
        return string.IsNullOrWhiteSpace(msg) ? fallback : msg.Trim();
    }

    public static void Check(int cplErr, string path, string what)
    {
        if (cplErr >= GdalNative.CE_Failure) throw new RasterException(path, $"{what}: {LastError("GDAL reported a failure")}");
    }
}
